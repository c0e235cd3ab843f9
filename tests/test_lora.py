"""LoRA loading and application against diffusers' own Wan LoRA loading (WanLoraLoaderMixin + PEFT).

Each LoRA is written to a file in a real key format, read by OUR loader, applied merged and on
the fly to OUR DiT, and compared with diffusers' WanTransformer3DModel carrying the same file
loaded through diffusers' converters (fp32, 1e-4 relative).
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from kinema.core.checkpoints.io import CheckpointError
from kinema.core.dit import load_dit
from kinema.core.lora import LoRALinear, apply_loras, fit_lora, load_lora, lora_from_tensors
from tiny_dit import make_tiny_diffusers_dit, official_state_dict, reference_forward, save_tiny_dit, tiny_inputs
from tiny_lora import (GLOBAL_LINEARS, block_modules, comfy_lora, lightx2v_extras, musubi_lora, official_to_diffusers,
                       peft_lora, random_patches)

pytest.importorskip("peft", reason="diffusers' LoRA loading needs peft (pip install peft)")
from diffusers import WanPipeline  # noqa: E402

SEED = 0
MODES = ("merge", "on_the_fly")


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours - reference).abs().max() / reference.abs().max()).item()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model = make_tiny_diffusers_dit("t2v", seed=SEED)
    path = save_tiny_dit(tmp_path_factory.mktemp("dit"), "official", model=model)
    return model, load_dit(path), tiny_inputs(model)


def fresh_reference():
    return make_tiny_diffusers_dit("t2v", seed=SEED)


def write(tmp_path, name: str, tensors: dict) -> str:
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return str(path)


def write_peft(tmp_path, tensors: dict, alpha: float, rank: int, **config) -> str:
    """Saved by diffusers itself, PEFT config (lora_alpha, and any other LoraConfig field) in the header."""
    layers = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    modules = sorted({k.rsplit(".lora_", 1)[0] for k in layers})
    WanPipeline.save_lora_weights(tmp_path, transformer_lora_layers=layers, weight_name="peft.safetensors",
                                  transformer_lora_adapter_metadata={"r": rank, "lora_alpha": alpha,
                                                                     "target_modules": modules, **config})
    return str(tmp_path / "peft.safetensors")


def diffusers_load(reference, path: str, adapter: str) -> None:
    """diffusers' Wan path: lora_state_dict (format conversion) then the transformer's PEFT loader."""
    state, metadata = WanPipeline.lora_state_dict(path, return_lora_metadata=True)
    reference.load_lora_adapter(state, adapter_name=adapter, prefix="transformer", metadata=metadata)


def lora_file(kind: str, model, tmp_path, seed: int = 1) -> str:
    blocks = block_modules(model)
    if kind == "comfy":  # kohya names with dots, alpha; plus the embedding/head layers (no alpha, as diffusers wants)
        sd = comfy_lora(random_patches(model, blocks, seed=seed))
        sd |= comfy_lora(random_patches(model, GLOBAL_LINEARS, alpha=None, seed=seed + 100))
        return write(tmp_path, "comfy.safetensors", sd)
    if kind == "peft":
        return write_peft(tmp_path, peft_lora(random_patches(model, blocks, alpha=None, seed=seed), model), 8.0, 4)
    if kind == "musubi":
        return write(tmp_path, "musubi.safetensors", musubi_lora(random_patches(model, blocks, alpha=2.0, seed=seed)))
    if kind == "lightx2v":  # low-rank pairs + diff_b on every Linear, zero norm diffs, full head diff
        sd = comfy_lora(random_patches(model, blocks, alpha=4.0, seed=seed)) | lightx2v_extras(model, seed=seed)
        return write(tmp_path, "lightx2v.safetensors", sd)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["comfy", "peft", "musubi", "lightx2v"])
def test_each_format_matches_diffusers(setup, tmp_path, kind):
    model, ours, inputs = setup
    path = lora_file(kind, model, tmp_path)
    reference = fresh_reference()
    diffusers_load(reference, path, "x")
    reference.set_adapters(["x"], weights=[0.7])
    expected = reference_forward(reference, inputs)
    assert relative_error(reference_forward(model, inputs), expected) > 1e-2  # the LoRA changes the output
    lora = load_lora(path)
    for mode in MODES:
        assert relative_error(apply_loras(ours, [(lora, 0.7)], mode)(**inputs), expected) < 1e-4, mode


def test_peft_alpha_patterns_name_diffusers_modules(setup, tmp_path):
    """PEFT's per-module alphas are written in diffusers names, for block and top-level layers alike."""
    model, ours, inputs = setup
    patches = random_patches(model, block_modules(model) + list(GLOBAL_LINEARS), alpha=None, seed=3)
    path = write_peft(tmp_path, peft_lora(patches, model), 8.0, 4,
                      alpha_pattern={"proj_out": 1.0, "condition_embedder.time_proj": 24.0, "attn1.to_q": 16.0})
    reference = fresh_reference()
    diffusers_load(reference, path, "x")
    expected = reference_forward(reference, inputs)
    lora = load_lora(path)
    assert [lora.low_rank[m].scale for m in ("head.head", "time_projection.1", "blocks.0.self_attn.q")] == [0.25, 6, 4]
    for mode in MODES:
        assert relative_error(apply_loras(ours, [(lora, 1.0)], mode)(**inputs), expected) < 1e-4, mode


def test_stacked_loras_with_own_strengths(setup, tmp_path):
    model, ours, inputs = setup
    kinds, strengths = ("comfy", "musubi", "peft"), (0.5, 1.0, -0.3)
    paths = [lora_file(kind, model, tmp_path, seed=10 + i) for i, kind in enumerate(kinds)]
    reference = fresh_reference()
    for kind, path in zip(kinds, paths):
        diffusers_load(reference, path, kind)
    reference.set_adapters(list(kinds), weights=list(strengths))
    expected = reference_forward(reference, inputs)
    loras = [(load_lora(path), s) for path, s in zip(paths, strengths)]
    for mode in MODES:
        assert relative_error(apply_loras(ours, loras, mode)(**inputs), expected) < 1e-4, mode
    # Chaining (one KinemaLoRA node after another) stacks the same way, also mixing the modes.
    chained = apply_loras(apply_loras(ours, loras[:1], "on_the_fly"), loras[1:2], "merge")
    chained = apply_loras(chained, loras[2:], "on_the_fly")
    assert isinstance(chained.blocks[0].self_attn.q, LoRALinear) and len(chained.blocks[0].self_attn.q.adapters) == 2
    assert relative_error(chained(**inputs), expected) < 1e-4


def test_full_diff_patches_match_the_closed_form(setup, tmp_path):
    """`.diff` (any weight), `.diff_b` (bias) and `.diff_m` (modulation table): W + strength * diff.
    diffusers skips these keys, so the reference is its model with the tensors patched by hand."""
    model, ours, inputs = setup
    g = torch.Generator().manual_seed(5)
    state = official_state_dict(model)
    patched = ["blocks.0.self_attn.q.weight", "blocks.1.ffn.2.weight", "blocks.0.cross_attn.o.bias",
               "blocks.1.norm3.weight", "blocks.0.self_attn.norm_k.weight", "patch_embedding.weight",
               "blocks.1.modulation", "head.modulation"]
    diffs = {name: 0.05 * torch.randn(state[name].shape, generator=g) for name in patched}
    suffix = {"weight": "diff", "bias": "diff_b", "modulation": "diff_m"}
    sd = {f"diffusion_model.{name.rpartition('.')[0]}.{suffix[name.rpartition('.')[2]]}": d for name, d in diffs.items()}
    lora = load_lora(write(tmp_path, "diffs.safetensors", sd))
    reference = fresh_reference()
    to_diffusers = {v: k for k, v in _official_names(reference).items()}
    with torch.no_grad():
        params = dict(reference.named_parameters())
        for name, diff in diffs.items():
            params[to_diffusers[name]].add_(0.6 * diff)
    expected = reference_forward(reference, inputs)
    for mode in MODES:
        assert relative_error(apply_loras(ours, [(lora, 0.6)], mode)(**inputs), expected) < 1e-4, mode


def _official_names(model) -> dict[str, str]:
    from tiny_dit import _official_name
    return {k: _official_name(k) for k in model.state_dict()}


def test_base_dit_is_left_untouched(setup, tmp_path):
    model, ours, inputs = setup
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    lora = load_lora(lora_file("lightx2v", model, tmp_path))
    for mode in MODES:
        apply_loras(ours, [(lora, 1.0)], mode)
    after = ours.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert relative_error(ours(**inputs), reference_forward(model, inputs)) < 1e-4


def test_fp8_weights_stay_fp8_on_the_fly_and_requantise_when_merged(setup, tmp_path):
    model, _, inputs = setup
    path = save_tiny_dit(tmp_path / "fp8", "comfy", dtype="fp8_scaled", model=model)
    fp8, dequantised = load_dit(path), load_dit(path)
    for layer in dequantised.modules():  # by hand: the loader never builds a full-precision copy of fp8 weights
        if getattr(layer, "weight_scale", None) is not None:
            layer.weight = torch.nn.Parameter(layer.weight.float() * layer.weight_scale, requires_grad=False)
            layer.weight_scale = None
    lora = load_lora(lora_file("comfy", model, tmp_path))
    expected = apply_loras(dequantised, [(lora, 0.8)], "merge")(**inputs)  # same values, fp32 storage
    on_the_fly = apply_loras(fp8, [(lora, 0.8)], "on_the_fly")
    assert on_the_fly.blocks[0].self_attn.q.base.weight is fp8.blocks[0].self_attn.q.weight  # shared, still fp8
    assert relative_error(on_the_fly(**inputs), expected) < 1e-4
    merged = apply_loras(fp8, [(lora, 0.8)], "merge")
    assert merged.blocks[0].self_attn.q.weight.dtype == torch.float8_e4m3fn
    assert relative_error(merged(**inputs), expected) < 0.05  # one more fp8 rounding of the patched weights


def test_unknown_layout_is_refused_and_unexplained_keys_are_skipped_and_named(setup):
    _, ours, _ = setup
    sd_style = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8)}
    with pytest.raises(CheckpointError, match=r"no key matches a known Wan DiT LoRA format.*lora_unet_down_blocks_0"):
        lora_from_tensors(sd_style, "sd15.safetensors")
    mixed = comfy_lora(random_patches(make_tiny_diffusers_dit("t2v", num_layers=1), ["blocks.0.self_attn.q"]))
    mixed["diffusion_model.blocks.0.self_attn.rope.lora_down.weight"] = torch.zeros(4, 8)
    mixed["diffusion_model.blocks.0.foo.alpha"] = torch.tensor(1.0)
    # As native ComfyUI: a recognised file's keys no rule explains are skipped and named, the rest applies.
    lora = lora_from_tensors(mixed, "mixed.safetensors")
    assert list(lora.low_rank) == ["blocks.0.self_attn.q"]
    assert lora.unmatched == ("diffusion_model.blocks.0.self_attn.rope.lora_down.weight",
                              "diffusion_model.blocks.0.foo.alpha")
    fit = fit_lora(ours, lora)
    assert fit.skipped == lora.unmatched and "skipped 2" in fit.summary() and "foo.alpha" in fit.summary()
    assert isinstance(apply_loras(ours, [(lora, 1.0)], "on_the_fly").blocks[0].self_attn.q, LoRALinear)


def test_incomplete_or_mismatched_loras_are_refused(setup):
    model, ours, _ = setup
    half = comfy_lora(random_patches(model, ["blocks.0.self_attn.q"]))
    del half["diffusion_model.blocks.0.self_attn.q.lora_up.weight"]
    with pytest.raises(CheckpointError, match=r"blocks\.0\.self_attn\.q .*needs both its down"):
        lora_from_tensors(half, "half.safetensors")
    bigger = make_tiny_diffusers_dit("t2v", num_heads=3, num_layers=3)
    other = lora_from_tensors(comfy_lora(random_patches(bigger, block_modules(bigger))), "big.safetensors")
    with pytest.raises(CheckpointError, match=r"big\.safetensors: this LoRA does not fit the DiT.*blocks\.0\.self_attn\.q "
                                              r"\(LoRA \[384 x 384\], layer \[256 x 256\]\).*pick the LoRA made for"):
        apply_loras(ours, [(other, 1.0)])
    with pytest.raises(ValueError, match="unknown LoRA mode 'fused'"):
        apply_loras(ours, [], "fused")


def test_extra_keys_are_skipped_and_named_the_rest_applies(setup, tmp_path):
    """An I2V LoRA (image cross-attention k_img/v_img, image embedder) on a T2V model, as users apply Wan2.1
    LoRAs to other Wan models: the layers the T2V DiT has take the patch, the others are named, as native ComfyUI."""
    model, ours, inputs = setup
    i2v = make_tiny_diffusers_dit("i2v_clip", seed=SEED)
    image_layers = [f"blocks.{i}.cross_attn.{m}" for i in range(2) for m in ("k_img", "v_img")] + ["img_emb.proj.1"]
    tensors = comfy_lora(random_patches(i2v, block_modules(i2v) + image_layers, seed=3))
    full = write(tmp_path, "i2v.safetensors", tensors)
    fitting = write(tmp_path, "t2v_part.safetensors",
                    {k: v for k, v in tensors.items() if not any(f".{m}." in k for m in image_layers)})
    reference = fresh_reference()
    diffusers_load(reference, fitting, "t2v_part")  # diffusers' own loading of just the layers a T2V model has
    expected = reference_forward(reference, inputs)
    lora = load_lora(full)
    fit = fit_lora(ours, lora)
    assert fit.skipped == tuple(image_layers) and len(fit.lora) == len(block_modules(model))
    assert "skipped 5 this DiT has no layer for" in fit.summary() and "blocks.0.cross_attn.k_img" in fit.summary()
    for mode in MODES:
        assert relative_error(apply_loras(ours, [(lora, 1.0)], mode)(**inputs), expected) < 1e-4
    image_only = lora_from_tensors({k: v for k, v in tensors.items() if "_img." in k or "img_emb" in k}, "img.pt")
    with pytest.raises(CheckpointError, match=r"img\.pt: none of this LoRA's 5 patches names a layer of the DiT"):
        apply_loras(ours, [(image_only, 1.0)])
