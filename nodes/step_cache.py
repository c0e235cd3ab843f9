"""KinemaStepCache: settings of the training-free step cache, for KinemaSampler's `step_cache` input."""
from __future__ import annotations

STEP_CACHE = "KINEMA_STEP_CACHE"  # socket type: carries a core.cache.StepCacheSettings


class KinemaStepCache:
    DESCRIPTION = ("Skips DiT evaluations while the model output would barely change (EasyCache-style, no "
                   "calibration): about 2x fewer evaluations on 30-50 step runs. Not for 4-step distilled models.")
    CATEGORY = "Kinema/sampling"
    RETURN_TYPES = (STEP_CACHE,)
    RETURN_NAMES = ("step_cache",)
    OUTPUT_TOOLTIPS = ("Connect to KinemaSampler's step_cache input.",)
    FUNCTION = "settings"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "threshold": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip":
                    "Tolerated accumulated relative change of the model output before it runs again: higher skips "
                    "more (faster, less faithful); 0 never skips."}),
                "start_step": ("INT", {"default": 1, "min": 0, "max": 1000, "tooltip":
                    "Steps before this one always run the model (the layout of the video forms early)."}),
                "end_step": ("INT", {"default": -1, "min": -1000, "max": 1000, "tooltip":
                    "Steps from this one on always run the model; negative counts from the end (-1: the last "
                    "step always runs)."}),
            }
        }

    def settings(self, threshold: float, start_step: int, end_step: int):
        from ..core.cache import StepCacheSettings

        return (StepCacheSettings(threshold=threshold, start_step=start_step, end_step=end_step),)


NODE_CLASS_MAPPINGS = {"KinemaStepCache": KinemaStepCache}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaStepCache": "Kinema Step Cache"}
