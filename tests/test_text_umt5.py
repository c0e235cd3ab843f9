"""Our umT5 encoder against transformers' UMT5EncoderModel (the independent reference) on a tiny
random config saved in each real file layout, plus the measured cost of bf16/fp16/fp8 weights."""
from __future__ import annotations

import functools

import pytest
import torch

from kinema.core.progress import Cancelled, Progress
from kinema.core.text import UMT5_XXL, load_text_encoder
from kinema.core.text.umt5 import UMT5Encoder, relative_position_buckets
from tiny_umt5 import reference_hidden, save_tiny_umt5, tiny_reference_model, tiny_spiece_processor

PROMPTS = [
    "A cat walks slowly on the green grass.",
    "一只可爱的小猫在草地上奔跑 😀🎬",
    "Un gâteau délicieux, façade élégante — Straße über Dämmerung.",
    "x",
    "Cinematic aerial shot of a city at night, neon lights reflecting on wet streets. " * 6,  # > 128 tokens
]


def sentencepiece_ids(prompts: list[str]) -> list[list[int]]:
    """What umT5's tokenizer gives, straight from the sentencepiece library: pieces + </s> (id 1)."""
    processor = tiny_spiece_processor()
    return [processor.encode(p)[:511] + [1] for p in prompts]


@functools.lru_cache(maxsize=None)
def fp32_reference(prompts: tuple[str, ...]) -> list[torch.Tensor]:
    return reference_hidden(sentencepiece_ids(list(prompts)))


def relative_error(ours: list[torch.Tensor], ref: list[torch.Tensor]) -> float:
    assert [o.shape for o in ours] == [r.shape for r in ref]
    return max((o - r).abs().max().item() for o, r in zip(ours, ref)) / max(r.abs().max().item() for r in ref)


def test_relative_buckets_match_transformers():
    attention = tiny_reference_model().encoder.block[0].layer[0].SelfAttention
    positions = torch.arange(300)
    theirs = attention._relative_position_bucket(positions[None, :] - positions[:, None])
    assert torch.equal(relative_position_buckets(300, 32, 128), theirs)


@pytest.mark.parametrize("layout", ["official_pth", "comfy", "hf"])
def test_fp32_matches_transformers_with_padding_and_non_ascii(tmp_path, layout):
    encoder = load_text_encoder(save_tiny_umt5(tmp_path, layout))
    encoder.batch_size = 2  # batches padded differently from the reference's single batch
    ours = encoder.encode(PROMPTS)
    assert all(o.dtype == torch.float32 for o in ours)
    assert relative_error(ours, fp32_reference(tuple(PROMPTS))) <= 1e-4


def test_long_prompt_is_truncated_to_512_rows(tmp_path):
    encoder = load_text_encoder(save_tiny_umt5(tmp_path, "comfy"))
    prompt = "The quick brown fox jumps over the lazy dog while the camera pans left. " * 40
    assert len(tiny_spiece_processor().encode(prompt)) > 600
    (ours,) = encoder.encode([prompt])
    assert ours.shape == (512, 32)
    assert relative_error([ours], reference_hidden(sentencepiece_ids([prompt]))) <= 1e-4


def _reference_with_weights(transform) -> dict[str, torch.Tensor]:
    """The reference model's state dict with each tensor passed through transform(key, tensor)."""
    return {k: transform(k, v) for k, v in tiny_reference_model().state_dict().items()}


def test_fp8_scaled_file_dequantizes_exactly(tmp_path):
    """Against HF run with fp8(W / s) * s weights: proves the scale semantics, not just closeness."""
    encoder = load_text_encoder(save_tiny_umt5(tmp_path, "comfy_fp8_scaled", dtype=torch.float16))

    def as_stored(key, w):
        if w.ndim == 2 and ("SelfAttention." in key or "DenseReluDense." in key) and "relative" not in key:
            scale = w.abs().max().float() / 448.0
            return (w / scale).to(torch.float8_e4m3fn).float() * scale
        return w.to(torch.float16).float()

    model = tiny_reference_model()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        model.load_state_dict(_reference_with_weights(as_stored))
        ref = reference_hidden(sentencepiece_ids(PROMPTS))
    finally:
        model.load_state_dict(original)
    assert relative_error(encoder.encode(PROMPTS), ref) <= 1e-4


# Measured on this tiny random model (max |ours - fp32 reference| / max |reference|), bound ~2-3x:
# bf16 file 0.0066, fp16 file 0.0011, fp8 scaled 0.075 (0.070 with bf16 compute), bf16 compute 0.0107.
@pytest.mark.parametrize(
    "layout, storage, compute, bound",
    [
        ("comfy", torch.bfloat16, None, 0.02),
        ("official_pth", torch.float16, None, 0.005),
        ("comfy_fp8_scaled", torch.float16, None, 0.15),
        ("official_pth", torch.bfloat16, torch.bfloat16, 0.03),
    ],
)
def test_low_precision_within_measured_bound(tmp_path, layout, storage, compute, bound):
    encoder = load_text_encoder(save_tiny_umt5(tmp_path, layout, dtype=storage), dtype=compute)
    stored = encoder.model.blocks[0].attn.q.weight.dtype
    assert stored == (torch.float8_e4m3fn if layout == "comfy_fp8_scaled" else storage)  # not upcast in memory
    ours = encoder.encode(PROMPTS)
    assert all(o.dtype == torch.float32 for o in ours)
    assert relative_error(ours, fp32_reference(tuple(PROMPTS))) <= bound


def test_umt5_xxl_has_the_published_parameter_count():
    with torch.device("meta"):
        model = UMT5Encoder(UMT5_XXL)
    assert sum(p.numel() for p in model.parameters()) == 5_680_910_336


def test_progress_steps_once_per_block_and_cancels(tmp_path):
    encoder = load_text_encoder(save_tiny_umt5(tmp_path, "comfy"))
    encoder.batch_size = 2
    steps = []
    encoder.encode(PROMPTS[:3], Progress(on_step=lambda done, total, _: steps.append((done, total))))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]  # 2 batches x 2 blocks

    def cancel():
        raise Cancelled

    with pytest.raises(Cancelled):
        encoder.encode(PROMPTS[:1], Progress(check_cancel=cancel))


@pytest.mark.gpu
def test_cuda_matches_transformers(tmp_path):
    fp32 = load_text_encoder(save_tiny_umt5(tmp_path / "fp32", "comfy"), dtype=torch.float32, device="cuda")
    assert fp32.device.type == "cuda"
    assert relative_error(fp32.encode(PROMPTS), fp32_reference(tuple(PROMPTS))) <= 1e-4
    fp8 = load_text_encoder(save_tiny_umt5(tmp_path / "fp8", "comfy_fp8_scaled", dtype=torch.float16), device="cuda")
    assert fp8.dtype == torch.bfloat16  # Wan's default on CUDA
    assert relative_error(fp8.encode(PROMPTS), fp32_reference(tuple(PROMPTS))) <= 0.15  # CPU measured 0.070
