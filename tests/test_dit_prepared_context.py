"""Text (and CLIP image) keys and values prepared once per run (`dit.prepare_context`): a sampling
loop fed prepared contexts gives bit-identical latents to the loop fed raw ones, for T2V, I2V with
CLIP, VACE and Animate, with guidance (two prompts) and a prompt switch part-way (a prompt schedule);
the prepared path matches diffusers; a context prepared for another model or batch is refused.
Also: the DiT's forward is grad-neutral (issue 13)."""
from __future__ import annotations

import functools

import pytest
import torch

from kinema.core.dit import PreparedContext, load_dit
from kinema.core.sampling import SamplerSettings, make_schedule
from kinema.core.sampling.guidance import guided_velocity
from kinema.core.sampling.loop import run_loop

from tiny_dit import TEXT_DIM, make_tiny_diffusers_dit, reference_forward, relative_error, save_tiny_dit, tiny_inputs

REL_TOL = 1e-4  # against diffusers, fp32 (as the other DiT parity tests)
STEPS = 4
CFG = 5.0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """variant -> (diffusers reference, our DiT loaded from its official-layout file), built once per variant."""

    @functools.cache
    def load(variant: str):
        reference = make_tiny_diffusers_dit(variant)
        return reference, load_dit(save_tiny_dit(tmp_path_factory.mktemp(variant), "official", variant, model=reference))

    return load


def _prompts(batch: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, TEXT_DIM, generator=g) for n in (11, 23, 4)[:batch]]


def _sample(dit, inputs: dict, prompts: dict, prepare: bool) -> torch.Tensor:
    """A guided UniPC run; the positive prompt switches from "a" to "b" at the halfway step."""
    model_inputs = {k: v for k, v in inputs.items() if k not in ("x", "t", "context") and v is not None}
    if prepare:
        clip_fea = model_inputs.get("clip_fea")
        prompts = {name: dit.prepare_context(rows, clip_fea) for name, rows in prompts.items()}
        assert all(isinstance(p, PreparedContext) for p in prompts.values())
    schedule = make_schedule(SamplerSettings(steps=STEPS, solver="unipc"))
    batch = inputs["x"].shape[0]

    def velocity_at(x: torch.Tensor, i: int) -> torch.Tensor:
        t = schedule.timesteps[i].expand(batch)  # [B]
        positive = prompts["a"] if i < STEPS // 2 else prompts["b"]
        return guided_velocity(lambda context: dit(x, t, context, **model_inputs), positive, prompts["negative"], CFG)

    with torch.inference_mode():
        return run_loop(inputs["x"].clone(), schedule, "unipc", velocity_at)


@pytest.mark.parametrize("variant, batch", [("t2v", 2), ("i2v_clip", 1), ("vace", 1), ("animate", 1)])
def test_prepared_run_is_bit_identical_to_the_raw_run(models, variant, batch):
    reference, dit = models(variant)
    inputs = tiny_inputs(reference, batch=batch)
    prompts = {"a": _prompts(batch, 1), "b": _prompts(batch, 2), "negative": _prompts(batch, 3)}
    raw = _sample(dit, inputs, prompts, prepare=False)
    prepared = _sample(dit, inputs, prompts, prepare=True)
    assert torch.equal(raw, prepared)
    # ...and not because the text is ignored: the two prompts give different velocities.
    model_inputs = {k: v for k, v in inputs.items() if k != "context" and v is not None}
    with torch.no_grad():
        assert (dit(**model_inputs, context=prompts["a"]) - dit(**model_inputs, context=prompts["b"])).abs().max() > 1e-3


@pytest.mark.parametrize("variant", ["t2v", "i2v_clip", "vace"])
def test_prepared_forward_matches_diffusers(models, variant):
    reference, dit = models(variant)
    inputs = tiny_inputs(reference, batch=2)
    prepared = dit.prepare_context(inputs["context"], inputs["clip_fea"])
    with torch.no_grad():
        ours = dit(**dict(inputs, context=prepared))
    assert relative_error(ours, reference_forward(reference, inputs)) <= REL_TOL


def test_prepared_context_holds_one_key_value_pair_per_attending_block(models):
    reference, dit = models("vace")
    with torch.no_grad():
        prepared = dit.prepare_context(_prompts(2, 1))
    c = dit.config
    assert prepared.batch == 2 and prepared.text.shape == (2, c.text_len, c.dim) and prepared.image is None
    assert len(prepared.blocks) == c.num_layers and len(prepared.vace_blocks) == len(c.vace_layers)
    assert prepared.blocks[0].k.shape == (2, c.text_len, c.num_heads, c.head_dim) and prepared.blocks[0].k_img is None


def test_prepared_context_is_refused_by_another_model_batch_or_image(models, tmp_path):
    reference, dit = models("i2v_clip")
    other = load_dit(save_tiny_dit(tmp_path, "official", "i2v_clip", model=reference))  # same weights, other model
    inputs = tiny_inputs(reference, batch=1)
    x, t, y, clip_fea = inputs["x"], inputs["t"], inputs["y"], inputs["clip_fea"]
    with torch.no_grad():
        prepared = dit.prepare_context(inputs["context"], clip_fea)
        assert torch.equal(dit(x, t, prepared, y=y, clip_fea=clip_fea), dit(x, t, prepared, y=y))
        with pytest.raises(ValueError, match="made by another model"):
            other(x, t, prepared, y=y)
        with pytest.raises(ValueError, match="1 prompt.* for a batch of 2"):
            dit(x.repeat(2, 1, 1, 1, 1), t.repeat(2), prepared, y=y.repeat(2, 1, 1, 1, 1))
        with pytest.raises(ValueError, match="clip_fea differs"):
            dit(x, t, prepared, y=y, clip_fea=clip_fea.clone())
        with pytest.raises(ValueError, match="needs clip_fea"):
            dit.prepare_context(inputs["context"])
    dit.compute_dtype = torch.bfloat16
    try:
        with pytest.raises(ValueError, match="computed in torch.float32"):
            dit(x, t, prepared, y=y)
    finally:
        dit.compute_dtype = torch.float32


def test_forward_is_grad_neutral(models):
    """Under autograd the forward records a graph (training calls it as is) and gives the same
    numbers as the no-grad call inference makes (issue 13: no @torch.no_grad inside the model)."""
    reference, dit = models("t2v")
    inputs = tiny_inputs(reference, batch=2)
    with torch.no_grad():
        expected = dit(**inputs)
    weight = dit.blocks[0].cross_attn.k.weight
    weight.requires_grad_(True)
    try:
        out = dit(**inputs)
        assert out.grad_fn is not None
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
        out.square().mean().backward()
        assert weight.grad is not None and weight.grad.abs().sum() > 0  # the text keys take part in the graph
    finally:
        weight.requires_grad_(False)
        weight.grad = None
