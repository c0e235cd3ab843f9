"""Load nodes for the input folder: a picture (the character photo) and a video (the driving motion).

ComfyUI's own LoadImage does the same inside ComfyUI; these exist so that `python -m kinema run`
can execute the pose and Animate workflows without ComfyUI (files from --input / KINEMA_INPUT).
"""
from __future__ import annotations

import hashlib

import torch

from . import host

CATEGORY = "Kinema/load"


def _file_fingerprint(name: str) -> str:
    """Changes when the file does, so ComfyUI runs the node again after the file is replaced."""
    path = host.input_path(name)
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class KinemaLoadImage:
    DESCRIPTION = ("Loads a picture from the input folder (upload it here in ComfyUI; `kinema run` reads --input), "
                   "turned upright by its EXIF orientation; transparency becomes black.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "INT", "INT")
    RETURN_NAMES = ("image", "width", "height")
    OUTPUT_TOOLTIPS = ("The picture [1, H, W, 3] in 0..1.", "Its width in pixels.", "Its height in pixels.")
    FUNCTION = "load"
    REQUIRES = ("PIL",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": (host.input_files(host.IMAGE_EXTENSIONS), {"image_upload": True, "tooltip":
                    "Picture file in the input folder (png, jpg, webp, bmp), e.g. the full-body character photo."}),
            }
        }

    @classmethod
    def IS_CHANGED(cls, image: str):
        return _file_fingerprint(image)

    def load(self, image: str):
        from PIL import Image, ImageOps

        path = host.input_path(image)
        try:
            with Image.open(path) as opened:
                picture = ImageOps.exif_transpose(opened).convert("RGB")
        except OSError as error:  # PIL.UnidentifiedImageError is an OSError
            raise ValueError(f"KinemaLoadImage: {path} is not a readable picture ({error}); use a png, jpg, webp "
                             "or bmp file") from None
        pixels = torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8)
        tensor = pixels.view(picture.height, picture.width, 3)[None].float() / 255.0  # [1, H, W, 3]
        return (tensor, picture.width, picture.height)


class KinemaLoadVideo:
    DESCRIPTION = ("Loads the frames of a video file from the input folder as an IMAGE batch (e.g. the driving video "
                   "for KinemaPoseExtract and the face crops). Cap the frames: every frame is held in memory.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "FLOAT", "INT")
    RETURN_NAMES = ("images", "fps", "frame_count")
    OUTPUT_TOOLTIPS = ("Frames [N, H, W, 3] in 0..1.", "Frame rate of the returned frames (the file's / frame_step).",
                       "Number of frames returned.")
    FUNCTION = "load"
    REQUIRES = ("av",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": (host.input_files(host.VIDEO_EXTENSIONS), {"video_upload": True, "tooltip":
                    "Video file in the input folder (mp4, mov, webm, mkv, avi, gif)."}),
                "max_frames": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip":
                    "Keep at most this many frames from the start (0 = all). Animate clips use 77 frames."}),
                "frame_step": ("INT", {"default": 1, "min": 1, "max": 60, "tooltip":
                    "Keep every n-th frame (2 turns a 60 fps video into 30 fps)."}),
            }
        }

    @classmethod
    def IS_CHANGED(cls, video: str, max_frames: int, frame_step: int):
        return _file_fingerprint(video)

    def load(self, video: str, max_frames: int, frame_step: int):
        import av

        from ..core.video import read_frames

        path = host.input_path(video)
        try:
            data = read_frames(path, step=frame_step, max_frames=max_frames)
        except av.error.FFmpegError as error:
            raise ValueError(f"KinemaLoadVideo: {path} is not a readable video ({error}); use an mp4, mov, webm, "
                             "mkv, avi or gif file") from None
        images = data.frames.float() / 255.0  # [N, H, W, 3]
        return (images, float(data.fps), data.frame_count)


NODE_CLASS_MAPPINGS = {"KinemaLoadImage": KinemaLoadImage, "KinemaLoadVideo": KinemaLoadVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaLoadImage": "Kinema Load Image", "KinemaLoadVideo": "Kinema Load Video"}
