"""CLIP vision: our tower loaded from every file layout against transformers' CLIPVisionModel, and Wan's
preprocessing against transformers' CLIPImageProcessor and an independent bicubic written here."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kinema.core.checkpoints import CheckpointError
from kinema.core.clip_vision import CLIP_MEAN, CLIP_STD, load_clip_vision, preprocess
from tiny_clip_vision import IMAGE_SIZE, LAYOUTS, make_tiny_clip_vision, reference_features, save_tiny_clip_vision


@pytest.fixture(scope="module")
def model():
    return make_tiny_clip_vision()


def _pixels(n: int = 2, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_penultimate_features_match_transformers(tmp_path, model, layout):
    encoder = load_clip_vision(save_tiny_clip_vision(tmp_path, layout, model))
    pixels = _pixels()
    ours = encoder.tower(pixels)  # [2, 5, 128]
    ref = reference_features(model, pixels)
    assert ours.shape == ref.shape == (2, 5, 128)
    error = ((ours - ref).abs().max() / ref.abs().max()).item()
    print(f"clip vision {layout}: relative error {error:.2e}")
    assert error <= 1e-4


def test_head_count_from_a_transformers_config(tmp_path):
    """32-wide heads: the width alone would say 64-wide; the folder's config.json says 4 heads."""
    model = make_tiny_clip_vision(width=128, heads=4, seed=1)
    encoder = load_clip_vision(save_tiny_clip_vision(tmp_path, "transformers", model))
    assert encoder.config.heads == 4
    pixels = _pixels()
    ref = reference_features(model, pixels)
    assert ((encoder.tower(pixels) - ref).abs().max() / ref.abs().max()).item() <= 1e-4


def test_vit_h_14_has_16_heads_of_80():
    """Wan's tower: the shapes of clip_vision_h (on the meta device) give the released ViT-H/14 config."""
    from kinema.core.clip_vision import VIT_H_14, ClipVisionConfig

    with torch.device("meta"):
        tensors = {"patch_embedding.weight": torch.empty(1280, 3, 14, 14), "pos_embedding": torch.empty(1, 257, 1280),
                   **{f"transformer.{i}.mlp.0.weight": torch.empty(5120, 1280) for i in range(32)}}
    assert ClipVisionConfig.from_state_dict(tensors, "clip_vision_h") == VIT_H_14
    assert VIT_H_14.tokens == 257 and VIT_H_14.width // VIT_H_14.heads == 80


def test_fp16_file_runs_its_rounded_weights(tmp_path, model):
    encoder = load_clip_vision(save_tiny_clip_vision(tmp_path, "comfy", model, dtype=torch.float16))
    rounded = make_tiny_clip_vision()
    rounded.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    pixels = _pixels()
    ref = reference_features(rounded, pixels)
    assert ((encoder.tower(pixels) - ref).abs().max() / ref.abs().max()).item() <= 1e-4


def _keys_bicubic_matrix(source: int, target: int) -> torch.Tensor:
    """[target, source] weights of Keys' cubic (a = -0.75), half-pixel centres, edge pixels repeated: the
    interpolation Wan's `F.interpolate(mode='bicubic', align_corners=False)` performs, written out."""
    def cubic(d: float) -> float:
        a, d = -0.75, abs(d)
        if d <= 1:
            return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
        return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a if d < 2 else 0.0

    weights = torch.zeros(target, source, dtype=torch.float64)
    for i in range(target):
        centre = (i + 0.5) * source / target - 0.5
        base = int(np.floor(centre))
        for j in range(base - 1, base + 3):
            weights[i, min(max(j, 0), source - 1)] += cubic(centre - j)
    return weights


def test_preprocess_is_wans_squash_resize_and_clip_normalisation():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 45, 71, generator=g) * 2 - 1  # any aspect: squashed, never cropped
    rows, cols = _keys_bicubic_matrix(45, 224), _keys_bicubic_matrix(71, 224)
    resized = torch.einsum("ih,nchw,jw->ncij", rows, image.double(), cols)  # [1, 3, 224, 224]
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    expected = ((resized * 0.5 + 0.5) - mean.double()) / std.double()
    ours = preprocess(image, 224)
    assert ours.shape == (1, 3, 224, 224)
    torch.testing.assert_close(ours.double(), expected, atol=1e-4, rtol=0)  # fp32 resize vs float64


def test_preprocess_equals_transformers_image_processor():
    """At the tower's own size the resize is the identity and both sides see the same 8-bit picture."""
    from PIL import Image
    from transformers import CLIPImageProcessor

    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    processor = CLIPImageProcessor(do_resize=True, size={"height": 224, "width": 224}, do_center_crop=False,
                                   resample=Image.BICUBIC, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    ref = processor(images=Image.fromarray(picture), return_tensors="pt")["pixel_values"]
    ours = preprocess(torch.from_numpy(picture).permute(2, 0, 1)[None].float() / 255 * 2 - 1, 224)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_encode_is_preprocess_then_tower(tmp_path, model):
    encoder = load_clip_vision(save_tiny_clip_vision(tmp_path, "official", model))
    image = torch.rand(1, 3, 40, 60) * 2 - 1
    features = encoder.encode(image)
    torch.testing.assert_close(features, reference_features(model, preprocess(image, IMAGE_SIZE)), atol=1e-5,
                               rtol=1e-4)


def test_not_a_clip_vision_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "dit.safetensors"
    save_file({"blocks.0.self_attn.q.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(CheckpointError, match=r"dit\.safetensors: this looks like a Wan diffusion model.*clip_vision_h"):
        load_clip_vision(path)


def test_unknown_key_is_named(tmp_path, model):
    from safetensors.torch import load_file, save_file

    path = save_tiny_clip_vision(tmp_path, "comfy", model)
    tensors = load_file(str(path))
    tensors["vision_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"] = torch.zeros(2, 128)
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match=r"no rule of the transformers CLIPVisionModel layout.*lora_A"):
        load_clip_vision(path)
