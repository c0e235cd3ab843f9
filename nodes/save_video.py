"""IMAGE batch -> H.264 mp4 in the output folder."""
from __future__ import annotations

from . import host

CHUNK_FRAMES = 16  # frames converted and encoded per step, to keep the uint8 copies small


class KinemaSaveVideo:
    DESCRIPTION = "Saves an IMAGE batch (one image per frame) as an H.264 mp4 in the output folder."
    CATEGORY = "Kinema/video"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Full path of the written mp4.",)
    OUTPUT_NODE = True
    FUNCTION = "save"
    REQUIRES = ("av",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Frames [N, H, W, 3] in 0..1, e.g. from KinemaVAEDecode."}),
                "fps": ("INT", {"default": 16, "min": 1, "max": 120, "tooltip": "Frame rate of the file."}),
                "filename_prefix": ("STRING", {"default": "kinema/video", "tooltip":
                    "Name of the file inside the output folder; a counter is appended and nothing is overwritten. "
                    "May contain subfolders."}),
            }
        }

    def save(self, images, fps: int, filename_prefix: str):
        from ..core.video import VideoWriter

        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"KinemaSaveVideo needs RGB frames [N, H, W, 3], got shape {tuple(images.shape)}; "
                             "connect an IMAGE output (an alpha channel must be removed first).")
        target = host.new_output_file(filename_prefix, "mp4")
        count = images.shape[0]
        with host.progress("save mp4", count) as progress, VideoWriter(target.path, fps=fps) as writer:
            for start in range(0, count, CHUNK_FRAMES):
                writer.write(images[start:start + CHUNK_FRAMES])  # [t, H, W, 3]
                progress.step(min(start + CHUNK_FRAMES, count), count)
        return {"ui": {"images": [target.ui()], "animated": (True,)}, "result": (str(target.path),)}


NODE_CLASS_MAPPINGS = {"KinemaSaveVideo": KinemaSaveVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaSaveVideo": "Kinema Save Video"}
