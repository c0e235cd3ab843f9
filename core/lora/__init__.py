"""LoRAs for the Wan DiT: key formats, reading, and applying (merged or on the fly)."""
from .apply import MODES, LoRAFit, LoRALinear, apply_loras, fit_lora
from .loader import LoRA, LowRank, load_lora, lora_from_tensors

__all__ = ["MODES", "LoRA", "LoRAFit", "LoRALinear", "fit_lora", "LowRank", "apply_loras", "load_lora", "lora_from_tensors"]
