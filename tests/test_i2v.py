"""Wan2.1 I2V-14B and FLF2V against diffusers' WanImageToVideoPipeline and WanTransformer3DModel on tiny random
models: the DiT inputs (CLIP features, mask + image latents) Kinema builds from a start (and end) image, and the
DiT's output on them.

The tiny CLIP tower uses 16 px patches on a 32 px input (5 tokens) and the video is 32 x 32, so diffusers'
CLIPImageProcessor and Wan's squash resize both see the picture at its own size: the features compare
exactly, and Wan's resize itself is tested in test_clip_vision.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tiny_dit
from kinema.core.clip_vision import CLIP_MEAN, CLIP_STD, load_clip_vision
from kinema.core.dit import load_dit
from kinema.core.sampling.setup import image_conditioning
from kinema.core.vae import load_vae
from kinema.nodes.clip_vision import KinemaCLIPVisionEncode, image_features_tensor
from kinema.nodes.types import ClipVisionModel
from tiny_clip_vision import save_tiny_clip_vision
from tiny_vae import save_tiny_vae, tiny_diffusers_vae

SIZE = 32  # video and CLIP input side
FRAMES = 9  # pixel frames -> 3 latent frames: the end frame lands in the last one's mask channel 3
CLIP_TOKENS = 5  # (32 / 16)^2 + 1


def _clip(seed: int = 0):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=tiny_dit.IMAGE_DIM, intermediate_size=4 * tiny_dit.IMAGE_DIM,
                              num_hidden_layers=3, num_attention_heads=1, image_size=SIZE, patch_size=16,
                              hidden_act="gelu", layer_norm_eps=1e-5)
    model = CLIPVisionModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "embedding" in name or "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def _pictures(count: int):
    from PIL import Image

    rng = np.random.default_rng(7)
    return [Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)) for _ in range(count)]


def _comfy_image(picture) -> torch.Tensor:
    return torch.from_numpy(np.array(picture)).float()[None] / 255  # ComfyUI IMAGE [1, H, W, 3]


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    from transformers import CLIPImageProcessor

    root = tmp_path_factory.mktemp("i2v")
    clip = _clip()
    clip_path = save_tiny_clip_vision(root / "clip", "transformers", _with_projection(clip))
    processor = CLIPImageProcessor(do_resize=True, size={"height": SIZE, "width": SIZE}, do_center_crop=False,
                                   resample=3, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    return dict(clip=clip, processor=processor, encoder=load_clip_vision(clip_path), vae_ref=tiny_diffusers_vae("2.1"),
                vae=load_vae(save_tiny_vae(root / "vae", "2.1", layout="comfy")), root=root)


def _with_projection(clip):
    """save_tiny_clip_vision takes a CLIPVisionModelWithProjection (its projection is not used here)."""
    from transformers import CLIPVisionModelWithProjection

    full = CLIPVisionModelWithProjection(clip.config)
    full.vision_model.load_state_dict(getattr(clip, "vision_model", clip).state_dict())
    return full


def _flf2v_dit(monkeypatch):
    """The tiny FLF2V model's position table spans two of the tiny CLIP's images."""
    monkeypatch.setitem(tiny_dit.VARIANTS, "flf2v", {**tiny_dit.VARIANTS["flf2v"],
                                                      "pos_embed_seq_len": 2 * CLIP_TOKENS})
    return tiny_dit.make_tiny_diffusers_dit("flf2v", seed=3)


# Wan2.1 I2V-14B (start image), FLF2V (start + end, both images' CLIP features) and a Wan2.2 I2V-A14B expert
# (no CLIP branch) given an end image, as diffusers' pipeline takes last_image for it.
@pytest.mark.parametrize("variant", ["i2v_clip", "flf2v", "i2v"])
def test_dit_inputs_and_output_match_diffusers(pieces, tmp_path, monkeypatch, variant):
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline

    reference = _flf2v_dit(monkeypatch) if variant == "flf2v" else tiny_dit.make_tiny_diffusers_dit(variant, seed=2)
    pipe = WanImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=pieces["vae_ref"],
                                   scheduler=FlowMatchEulerDiscreteScheduler(), image_processor=pieces["processor"],
                                   image_encoder=pieces["clip"], transformer=reference)
    with_end, with_clip = variant in ("flf2v", "i2v"), variant != "i2v"
    start, end = _pictures(2)
    # diffusers: the pipeline's own steps of __call__ (CLIP features, then noise + condition latents)
    with torch.no_grad():
        ref_features = None
        if with_clip:
            ref_features = pipe.encode_image([start, end] if with_end else start, "cpu")  # [images, 5, 64]
        to_pixels = lambda p: pipe.video_processor.preprocess(p, height=SIZE, width=SIZE).float()  # noqa: E731
        noise, ref_condition = pipe.prepare_latents(
            to_pixels(start), 1, 16, SIZE, SIZE, FRAMES, torch.float32, "cpu",
            torch.Generator().manual_seed(0), last_image=to_pixels(end) if with_end else None)
    # Kinema: the node's CLIP encode, then the sampler's image conditioning
    clip_model = ClipVisionModel(pieces["encoder"], "tiny")
    features, = KinemaCLIPVisionEncode().encode(clip_model, _comfy_image(start),
                                                _comfy_image(end) if with_end else None)
    clip_fea = image_features_tensor(features, "test") if with_clip else None  # [1, images x 5, 64]
    dit = load_dit(tiny_dit.save_tiny_dit(tmp_path, "comfy", variant, model=reference))
    rgb = lambda p: _comfy_image(p).permute(0, 3, 1, 2) * 2 - 1  # noqa: E731
    cond = image_conditioning(dit, pieces["vae"], rgb(start), noise.shape, torch.device("cpu"),
                              end_image=rgb(end) if with_end else None, clip_fea=clip_fea)

    if with_clip:
        torch.testing.assert_close(clip_fea, ref_features.reshape(1, -1, ref_features.shape[-1]), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(cond.y[:, :4], ref_condition[:, :4], atol=0, rtol=0)  # the mask, exactly
    latent_error = ((cond.y[:, 4:] - ref_condition[:, 4:]).abs().max() / ref_condition[:, 4:].abs().max()).item()

    g = torch.Generator().manual_seed(5)
    text = torch.randn(11, tiny_dit.TEXT_DIM, generator=g)
    t = torch.tensor([731.0])
    padded = torch.zeros(1, 512, tiny_dit.TEXT_DIM)
    padded[0, :11] = text
    with torch.no_grad():
        ref_out = reference(torch.cat([noise, ref_condition], dim=1), t, padded,
                            encoder_hidden_states_image=ref_features, return_dict=False)[0]
        out = dit(noise, t, [text], y=cond.y, clip_fea=cond.clip_fea)
    out_error = tiny_dit.relative_error(out, ref_out)
    print(f"{variant}: mask exact, image latents {latent_error:.2e}, DiT output {out_error:.2e} "
          f"(CLIP tokens {0 if clip_fea is None else clip_fea.shape[1]})")
    assert latent_error <= 1e-4 and out_error <= 1e-4


def test_i2v_14b_without_clip_features_says_what_to_connect(pieces, tmp_path):
    dit = load_dit(tiny_dit.save_tiny_dit(tmp_path, "comfy", "i2v_clip"))
    image = torch.zeros(1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="CLIP image features.*KinemaCLIPVisionEncode"):
        image_conditioning(dit, pieces["vae"], image, (1, 16, 3, 4, 4), torch.device("cpu"))


def test_flf2v_needs_both_images_features(pieces, tmp_path, monkeypatch):
    dit = load_dit(tiny_dit.save_tiny_dit(tmp_path, "comfy", "flf2v", model=_flf2v_dit(monkeypatch)))
    image = torch.zeros(1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="reads 10 CLIP tokens.*encode both"):
        image_conditioning(dit, pieces["vae"], image, (1, 16, 3, 4, 4), torch.device("cpu"), end_image=image,
                           clip_fea=torch.zeros(1, CLIP_TOKENS, tiny_dit.IMAGE_DIM))


def test_models_without_clip_branch_refuse_features(pieces, tmp_path):
    dit = load_dit(tiny_dit.save_tiny_dit(tmp_path, "comfy", "i2v"))  # Wan2.2 I2V-A14B: no CLIP
    image = torch.zeros(1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="no CLIP image branch"):
        image_conditioning(dit, pieces["vae"], image, (1, 16, 3, 4, 4), torch.device("cpu"),
                           clip_fea=torch.zeros(1, CLIP_TOKENS, tiny_dit.IMAGE_DIM))
    cond = image_conditioning(dit, pieces["vae"], image, (1, 16, 3, 4, 4), torch.device("cpu"), end_image=image)
    assert cond.y[0, :4, 0].eq(1).all() and cond.y[0, 3, -1].eq(1).all() and cond.y[0, :3, -1].eq(0).all()
