"""Training-free caches that skip DiT evaluations during sampling."""
from .step_cache import CachedModel, StepCache, StepCacheSettings, StepCacheStats, with_step_cache

__all__ = ["CachedModel", "StepCache", "StepCacheSettings", "StepCacheStats", "with_step_cache"]
