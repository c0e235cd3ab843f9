"""Reading checkpoint files and mapping every real key layout onto canonical (official Wan) names."""
from .io import CheckpointError, StateDict, read_state_dict
from .renaming import KeyLayout, Rule, Template, compose, dropped, identity, under_prefix

__all__ = ["CheckpointError", "KeyLayout", "Rule", "StateDict", "Template", "compose", "dropped", "identity",
           "read_state_dict", "under_prefix"]
