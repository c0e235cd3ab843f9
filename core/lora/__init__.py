"""LoRAs for the Wan DiT: key formats, reading, and applying (merged or on the fly)."""
from .apply import MODES, LoRALinear, apply_loras
from .loader import LoRA, LowRank, load_lora, lora_from_tensors

__all__ = ["MODES", "LoRA", "LoRALinear", "LowRank", "apply_loras", "load_lora", "lora_from_tensors"]
