"""Dense optical flow between two frames with OpenCV's DIS (Dense Inverse Search), imported only when used.

DIS is a classical, training-free flow (Kroeger et al., ECCV 2016) that ships in every OpenCV wheel
(opencv-python[-headless], opencv-contrib-python), so no weights are needed for motion-compensated
frame-rate conversion.
"""
from __future__ import annotations

import torch

INSTALL_HINT = "pip install opencv-python-headless"
PRESETS = ("ultrafast", "fast", "medium")


def import_cv2():
    """OpenCV, or an ImportError that says how to install it."""
    try:
        import cv2
    except ImportError as error:
        raise ImportError(f"Optical-flow frame interpolation ('dis_flow') needs OpenCV, which is not installed: "
                          f"run `{INSTALL_HINT}` (or `pip install kinema[interp]`), or choose the method "
                          f"'blend'.") from error
    return cv2


class DISFlow:
    """`flow(frame0, frame1)` -> (flow 0->1, flow 1->0), each float32 [H, W, 2] in pixels (dx, dy).

    flow01[y, x] is where the content at (x, y) in frame 0 has moved to in frame 1, minus (x, y).
    """

    def __init__(self, preset: str = "medium"):
        if preset not in PRESETS:
            raise ValueError(f"unknown DIS flow preset {preset!r}; use one of {', '.join(PRESETS)}")
        cv2 = import_cv2()
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))

    def __call__(self, frame0: torch.Tensor, frame1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patch = self._dis.getPatchSize()
        if max(frame0.shape[:2]) < patch:
            raise ValueError(f"frames of {frame0.shape[1]}x{frame0.shape[0]} pixels are too small for DIS optical flow "
                             f"(the {self.preset} preset needs a side of at least {patch}); use the method 'blend'")
        gray0, gray1 = _gray_uint8(frame0), _gray_uint8(frame1)  # [H, W] uint8 numpy, as DIS requires
        flow01 = self._dis.calc(gray0, gray1, None)  # [H, W, 2] float32
        flow10 = self._dis.calc(gray1, gray0, None)
        return torch.from_numpy(flow01), torch.from_numpy(flow10)


def _gray_uint8(frame: torch.Tensor):
    """RGB float [H, W, 3] in 0..1 -> luma (BT.601 weights) as a contiguous uint8 numpy array."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=frame.dtype, device=frame.device)
    luma = (frame @ weights).clamp(0, 1) * 255  # [H, W]
    return luma.round().to(torch.uint8).cpu().contiguous().numpy()
