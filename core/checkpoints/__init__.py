"""Reading checkpoint files and mapping every real key layout onto canonical (official Wan) names."""
from .io import CheckpointError, StateDict, read_state_dict

__all__ = ["CheckpointError", "StateDict", "read_state_dict"]
