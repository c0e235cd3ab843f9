"""KinemaLoRA: applies one LoRA file to a DiT; chain several for a stack, one chain per expert."""
from __future__ import annotations

from ..core.lora import MODES
from . import host
from .types import DIT, DiTModel


class KinemaLoRA:
    DESCRIPTION = ("Applies a LoRA (ComfyUI/kohya, diffusers/PEFT, musubi-tuner or lightx2v file) to a Wan DiT. "
                   "Chain nodes to stack LoRAs. For Wan2.2 A14B, put the high-noise LoRA on the high-noise DiT and "
                   "the low-noise LoRA on the low-noise DiT (or the same LoRA on both). As native ComfyUI, patches "
                   "for layers this model lacks are skipped and named on the node.")
    CATEGORY = "Kinema/loaders"
    RETURN_TYPES = (DIT,)
    RETURN_NAMES = ("dit",)
    OUTPUT_TOOLTIPS = ("The DiT with the LoRA applied; the input DiT is left unchanged.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "dit": (DIT, {"tooltip": "From KinemaDiTLoader or another KinemaLoRA."}),
                "lora_name": (host.model_files("loras"), {"tooltip":
                    "LoRA from models/loras, e.g. a lightx2v 4-step distillation LoRA."}),
                "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01, "tooltip":
                    "How strongly the LoRA applies (1.0 = as trained; 0 turns it off)."}),
                "mode": (list(MODES), {"default": "auto", "tooltip":
                    "merge: patched into the weights (fastest sampling). on_the_fly: added at each layer call, "
                    "base weights untouched (keeps fp8 weights exact; the only mode for GGUF models). auto: on_the_fly "
                    "for fp8 and GGUF models, else merge."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def apply(self, dit: DiTModel, lora_name: str, strength: float, mode: str, unique_id=None):
        from ..core.lora import apply_loras, fit_lora, load_lora

        from .native_model import restore_weights

        restore_weights(dit.model)  # a native LoRA on the loader's MODEL is not part of this DiT
        lora = load_lora(host.model_path("loras", lora_name))
        fit = fit_lora(dit.model, lora)  # as native ComfyUI: layers this DiT lacks are skipped, and named
        host.show_text(unique_id, fit.summary())
        return (DiTModel(apply_loras(dit.model, [(fit.lora, strength)], mode), f"{dit.name} + {lora_name}"),)


NODE_CLASS_MAPPINGS = {"KinemaLoRA": KinemaLoRA}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaLoRA": "Kinema LoRA"}
