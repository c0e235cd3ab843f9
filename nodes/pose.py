"""Pose driver nodes: extract a pose (MediaPipe, OpenPose JSON or POSE_KEYPOINT), retarget it to a photo, draw it.

MediaPipe is optional: without it the nodes still load, and extraction from pictures says how to
install it (other pose sources keep working).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from . import host

POSE = "KINEMA_POSE"  # socket type: a core.pose.PoseSequence
STYLES = ("openpose", "wan_animate", "face_crops")
CATEGORY = "Kinema/pose"
OPENPOSE_JSON_PREFIX = "kinema/pose"  # in the output folder


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """ComfyUI IMAGE `[N, H, W, 3]` float 0..1 -> uint8 numpy."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _to_image(frames: np.ndarray) -> torch.Tensor:
    """uint8 pictures `[..., H, W, 3]` -> ComfyUI IMAGE values, float 0..1."""
    return torch.from_numpy(np.ascontiguousarray(frames)).float() / 255.0


def _resized(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """IMAGE `[N, H, W, 3]` -> float 0..1 `[N, height, width, 3]` on the same device (antialiased when shrinking)."""
    from ..core.pose.resize import resize_pictures

    return resize_pictures(images.detach(), height, width).clamp(0, 1)


class KinemaPoseExtract:
    DESCRIPTION = ("Finds a person's body, hands and face offline (MediaPipe 0.10.14, nothing downloaded) in images "
                   "or a video file, or reads a pose made elsewhere (OpenPose JSON file/folder, DWPose POSE_KEYPOINT). "
                   "Cleans it: short gaps filled, jitter smoothed. Give exactly one source.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (POSE, "STRING")
    RETURN_NAMES = ("pose", "info")
    OUTPUT_TOOLTIPS = ("The pose sequence (pixels of the source's size).", "How often each part was found.")
    FUNCTION = "extract"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frame_step": ("INT", {"default": 1, "min": 1, "max": 60, "tooltip":
                    "Video file only: use every n-th frame (2 halves a 30 fps video to 15 fps)."}),
                "detect_long_side": ("INT", {"default": 960, "min": 0, "max": 4096, "step": 16, "tooltip":
                    "Pictures are shrunk to this long side for detection (0 = full size). Points are still "
                    "placed at full resolution."}),
                "smooth": ("BOOLEAN", {"default": True, "tooltip": "One Euro smoothing against jitter."}),
                "max_gap": ("INT", {"default": 5, "min": 0, "max": 60, "tooltip":
                    "Missing runs up to this many frames are interpolated; longer ones stay missing."}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "A photo (1 image) or consecutive video frames."}),
                "video_path": ("STRING", {"default": "", "tooltip":
                    "A video file, or an OpenPose JSON file or folder of per-frame JSON files; absolute, or relative "
                    "to the input folder."}),
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip":
                    "A pose from DWPose / OpenPose nodes (comfyui_controlnet_aux), pixels or 0..1."}),
                "json_width": ("INT", {"default": 0, "min": 0, "max": 16384, "tooltip":
                    "OpenPose JSON only: width of the pictures it was made from (JSON does not say)."}),
                "json_height": ("INT", {"default": 0, "min": 0, "max": 16384, "tooltip":
                    "OpenPose JSON only: height of those pictures."}),
                "save_openpose_json": ("BOOLEAN", {"default": False, "tooltip":
                    f"Also save the pose (after cleaning) as OpenPose JSON in the output folder "
                    f"({OPENPOSE_JSON_PREFIX}_00001_.json, ...; never overwrites): one file with a dict per frame "
                    f"(COCO-18 body, 70 face points, both hands, confidences as found, canvas size). Other tools "
                    f"read it, and so does video_path here."}),
                "person": ("STRING", {"default": "auto", "tooltip":
                    "Who to follow when several people are in view: 'auto' = the main person (largest and most "
                    "central over the clip, tracked frame to frame, found again after leaving), or a number: 0 = "
                    "the most prominent person, 1 = the next, ... (MediaPipe finds one person per frame; DWPose "
                    "POSE_KEYPOINT and OpenPose JSON can hold several)."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def extract(self, frame_step: int, detect_long_side: int, smooth: bool, max_gap: int, images=None,
                video_path: str = "", pose_keypoint=None, json_width: int = 0, json_height: int = 0,
                save_openpose_json: bool = False, person: str = "auto", unique_id=None):
        from ..core.pose.smoothing import CleanSettings, clean

        given = [name for name, value in (("images", images), ("video_path", (video_path or "").strip()),
                                          ("pose_keypoint", pose_keypoint)) if value is not None and len(value)]
        if len(given) != 1:
            raise ValueError(f"KinemaPoseExtract needs exactly one source (images, video_path or pose_keypoint), "
                             f"got {', '.join(given) or 'none'}; connect one and leave the others empty")
        pose, chosen = self._read(given[0], images, (video_path or "").strip(), pose_keypoint, frame_step,
                                  detect_long_side, json_width, json_height, person)
        info = _describe(pose) + (f"; {chosen}" if chosen else "")
        pose = clean(pose, CleanSettings(max_gap=max_gap, smooth=smooth))
        if save_openpose_json:
            info += f"; saved as {_save_openpose_json(pose)}"
        host.show_text(unique_id, info)
        return (pose, info)

    @staticmethod
    def _read(source, images, video_path, pose_keypoint, frame_step, detect_long_side, json_width, json_height,
              person):
        """The pose of the chosen person and a sentence about the choice ("" with one person in view)."""
        from ..core.pose.extract_mediapipe import ExtractSettings, extract_images, extract_video
        from ..core.pose.formats import read_openpose_json, read_pose_keypoint
        from ..core.pose.people import describe_choice, follow

        settings = ExtractSettings(frame_step=frame_step, detect_long_side=detect_long_side)
        if source == "pose_keypoint":
            pose, choice = read_pose_keypoint(pose_keypoint, person=person)
        elif source == "images":
            with host.progress("Pose extraction", images.shape[0]) as progress:
                pose, choice = follow(extract_images(_to_uint8(images), settings=settings, progress=progress), person)
        else:
            path = host.input_path(video_path)
            if path.lower().endswith(".json") or os.path.isdir(path):
                pose, choice = read_openpose_json(path, json_width or None, json_height or None, person=person)
            else:
                with host.progress("Pose extraction", 0) as progress:
                    pose, choice = follow(extract_video(path, settings=settings, progress=progress), person)
        return pose, describe_choice(choice, pose.frame_count)


def _save_openpose_json(pose) -> str:
    """Writes the pose as OpenPose JSON to a new file in the output folder; returns its name there."""
    from ..core.pose.formats import save_openpose_json

    target = host.new_output_file(OPENPOSE_JSON_PREFIX, "json")
    save_openpose_json(pose, target.path)
    return "/".join(part for part in (target.subfolder, target.filename) if part)


def _describe(pose) -> str:
    body = pose.body[..., 2] >= 0.5  # [N, 20]
    face = (pose.face[..., 2] > 0).any(axis=1)
    hands = (pose.hands[..., 2] > 0).any(axis=2)  # [N, 2]
    percent = lambda found: f"{100 * float(np.mean(found)):.0f}%"  # noqa: E731
    return (f"{pose.frame_count} frames {pose.width}x{pose.height} from {pose.source}: body {percent(body[:, 1])}, "
            f"wrists {percent(body[:, [4, 7]].all(axis=1))}, face {percent(face)}, "
            f"hands L {percent(hands[:, 0])} R {percent(hands[:, 1])}")


class KinemaPoseRetarget:
    DESCRIPTION = ("Moves the reference photo's person like the driving pose: every bone keeps the driving direction "
                   "and takes the photo's length, whatever the camera's zoom. What is visible is pinned on the photo's "
                   "own joints (neck, face, shoulders; the feet for full-body shots); points not seen are not drawn. "
                   "Says what it did; check the result with KinemaPoseRender over the photo.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (POSE, "STRING")
    RETURN_NAMES = ("pose", "info")
    OUTPUT_TOOLTIPS = ("The retargeted pose, on the reference photo's canvas.",
                       "What was done, e.g. 'upper body only; anchored on neck (96%), face (4%); hands missing in "
                       "60% of frames'.")
    FUNCTION = "retarget"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "driving_pose": (POSE, {"tooltip": "The motion: pose of the driving video."}),
                "reference_pose": (POSE, {"tooltip": "The character: pose of the photo (its first frame is used)."}),
                "anchor": (["auto", "neck", "feet"], {"default": "auto", "tooltip":
                    "What stays put on the photo: neck, feet (full-body shots), or auto (feet when both show them)."}),
                "symmetric": ("BOOLEAN", {"default": True, "tooltip":
                    "Left and right limbs get the same length (the longer of the photo's two)."}),
                "reference_joints_only": ("BOOLEAN", {"default": True, "tooltip":
                    "Leave out joints the photo does not show (e.g. legs of a half-body photo)."}),
            },
            "optional": {
                "motion": (["sway", "follow"], {"default": "sway", "tooltip":
                    "sway: the character stays on the photo and keeps the driving person's quick movements (camera "
                    "pans, zooms and slow drift are dropped; right for most footage). follow: it also travels along "
                    "the driving person's whole path from the first frame (a fixed camera)."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def retarget(self, driving_pose, reference_pose, anchor: str, symmetric: bool, reference_joints_only: bool,
                 motion: str = "sway", unique_id=None):
        from ..core.pose.retarget import RetargetSettings, describe, retarget_with_report

        settings = RetargetSettings(anchor=anchor, symmetric=symmetric, reference_joints_only=reference_joints_only,
                                    motion=motion)
        moved, report = retarget_with_report(driving_pose, reference_pose, settings)
        info = describe(driving_pose, moved, report, settings.threshold)
        host.show_text(unique_id, info)
        return (moved, info)


class KinemaPoseRender:
    DESCRIPTION = ("Draws a pose: 'openpose' (ControlNet/VACE look: body, hands, face dots), 'wan_animate' "
                   "(Wan2.2-Animate pose video: body with toes and hands, no face) or 'face_crops' (Wan-Animate "
                   "face video: 512x512 crops of the driving face, from the background frames or the pose's video).")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "POSE_KEYPOINT")
    RETURN_NAMES = ("images", "pose_keypoint")
    OUTPUT_TOOLTIPS = ("One picture per pose frame.", "The pose in comfyui_controlnet_aux's format (pixels).")
    FUNCTION = "render"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pose": (POSE, {"tooltip": "From KinemaPoseExtract or KinemaPoseRetarget."}),
                "style": (list(STYLES), {"default": "openpose", "tooltip":
                    "openpose (ControlNet/VACE), wan_animate (Animate pose video) or face_crops (Animate face video)."}),
                "width": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8, "tooltip":
                    "Output width (0 = the pose's own canvas). Use the generation size for conditioning."}),
                "height": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8, "tooltip":
                    "Output height (0 = the pose's own canvas)."}),
                "body": ("BOOLEAN", {"default": True, "tooltip": "Draw the body skeleton."}),
                "hands": ("BOOLEAN", {"default": True, "tooltip": "Draw the hand skeletons."}),
                "face": ("BOOLEAN", {"default": True, "tooltip": "Face dots (openpose style only)."}),
            },
            "optional": {
                "background": ("IMAGE", {"tooltip": "Pictures to draw over (e.g. the photo, to check the fit); "
                                                    "for face_crops: the driving frames."}),
            },
        }

    def render(self, pose, style: str, width: int, height: int, body: bool, hands: bool, face: bool, background=None):
        from ..core.pose.formats import to_pose_keypoint
        from ..core.pose.render import iter_render

        keypoints = to_pose_keypoint(pose)
        if style == "face_crops":
            return (torch.stack(list(_face_crops(pose, background))).clamp(0, 1), keypoints)
        width, height = width or pose.width, height or pose.height
        frames = None if background is None else _to_uint8(_resized(background, width, height))
        with host.progress("Pose render", pose.frame_count) as progress:
            pictures = []
            for done, picture in enumerate(iter_render(pose, style, width=width, height=height, background=frames,
                                                       body=body, hands=hands, face=face), 1):
                pictures.append(picture)
                progress.step(done, pose.frame_count)
        return (_to_image(np.stack(pictures)), keypoints)


def _face_crops(pose, background):
    """One face crop per pose frame, IMAGE-style float 0..1 `[512, 512, 3]` on the CPU."""
    from ..core.pose.extract_mediapipe import iter_video_frames
    from ..core.pose.face_crops import face_boxes, iter_face_crops

    boxes = face_boxes(pose)
    if background is not None:
        if background.shape[0] != pose.frame_count:
            raise ValueError(f"face_crops: background has {background.shape[0]} frames but the pose has "
                             f"{pose.frame_count}; connect the driving frames the pose was extracted from")
        frames = _resized(background, pose.width, pose.height)  # [N, H, W, 3] float, on background's device
        return (crop.cpu() for crop in iter_face_crops(iter(frames), boxes))
    if pose.video_path is None or not os.path.isfile(pose.video_path):
        raise ValueError("face_crops needs the driving frames: connect them to 'background', or extract the pose "
                         "from a video file (KinemaPoseExtract video_path) so they can be read from it")
    frames = iter_video_frames(pose.video_path, pose.video_frame_step)  # uint8 numpy [H, W, 3] each
    return (_to_image(crop) for crop in iter_face_crops(frames, boxes))


NODE_CLASS_MAPPINGS = {
    "KinemaPoseExtract": KinemaPoseExtract,
    "KinemaPoseRetarget": KinemaPoseRetarget,
    "KinemaPoseRender": KinemaPoseRender,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "KinemaPoseExtract": "Kinema Pose Extract",
    "KinemaPoseRetarget": "Kinema Pose Retarget",
    "KinemaPoseRender": "Kinema Pose Render",
}
