"""Classifier-free guidance and Wan's default negative prompt."""
from __future__ import annotations

from typing import Callable, Optional

import torch

# shared_config.sample_neg_prompt of the official Wan2.1/2.2 configs, used when no negative is given.
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)


def guided_velocity(
    predict: Callable[[object], torch.Tensor],
    positive,
    negative: Optional[object],
    scale: float,
) -> torch.Tensor:
    """v_neg + scale * (v_pos - v_neg) from two separate passes (as official Wan).

    `predict(context)` runs the model on one text conditioning. With scale 1 the result
    is v_pos, so the negative pass is skipped.
    """
    v_pos = predict(positive)  # [B, C, T, H, W]
    if scale == 1:
        return v_pos
    if negative is None:
        raise ValueError(f"cfg={scale} needs a negative conditioning; pass one (e.g. the encoded "
                         "WAN_NEGATIVE_PROMPT) or set cfg=1.0 to sample without guidance.")
    v_neg = predict(negative)
    return v_neg + scale * (v_pos - v_neg)
