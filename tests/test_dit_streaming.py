"""Block streaming gives the resident model's numbers exactly (issue 14): every DiT kind, fp8-scaled
weights, LoRAs on the fly (and merged) and Wan2.2's two experts in a sampling run, with the streamed
blocks in private CPU memory ("cpu") and in the memory-mapped file ("mmap").

The reference is the same file loaded the ordinary way (every weight where it was loaded). On the
CPU the streamed blocks run from private copies packed by the streamer; the mechanism tests
(test_dit_streaming_mechanism.py) check that they really do.
"""
from __future__ import annotations

import functools

import pytest
import torch

from kinema.core.dit import load_dit
from kinema.core.dit.streaming import BlockStreaming, load_streamed_dit, streamer_of
from kinema.core.lora import apply_loras, lora_from_tensors
from kinema.core.sampling import SamplerSettings, sample
from tiny_dit import TEXT_DIM, make_tiny_diffusers_dit, save_tiny_dit, tiny_inputs
from tiny_lora import GLOBAL_LINEARS, block_modules, comfy_lora, random_patches

STORAGES = ("cpu", "mmap")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(variant, dtype) -> (diffusers model, path of its ComfyUI-layout file), written once."""

    @functools.cache
    def write(variant: str, dtype="fp32"):
        model = make_tiny_diffusers_dit(variant)
        stored = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(dtype, dtype)
        return model, save_tiny_dit(tmp_path_factory.mktemp(variant), "comfy_prefixed", variant, stored, model=model)

    return write


def _run(dit, inputs: dict) -> torch.Tensor:
    with torch.inference_mode():
        return dit(**{k: v for k, v in inputs.items() if v is not None})


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("variant, kept, prefetch", [
    ("t2v", 0, 1), ("i2v", 1, 1), ("ti2v", 1, 2), ("i2v_clip", 0, 0), ("flf2v", 1, 1),
    ("vace", 2, 1), ("animate", 3, 2),
])
def test_streamed_forward_equals_resident(files, storage, variant, kept, prefetch):
    model, path = files(variant)
    inputs = tiny_inputs(model, per_token_t=variant == "ti2v")
    resident = _run(load_dit(path), inputs)
    streamed_dit = load_streamed_dit(path, BlockStreaming(blocks_on_device=kept, prefetch=prefetch, storage=storage),
                                     device="cpu")
    streamer = streamer_of(streamed_dit)
    assert streamer.plan.streamed > 0
    streamed = _run(streamed_dit, inputs)
    assert torch.equal(streamed, resident)
    assert streamer.copies_in == streamer.plan.streamed  # each streamed block copied in once for the forward
    assert len(streamer.loaded_units()) == kept  # the streamed ones were released again
    # A second call (a sampling step) streams them again, same numbers.
    assert torch.equal(_run(streamed_dit, inputs), resident)


@pytest.mark.parametrize("storage", STORAGES)
def test_fp8_scaled_weights_stream_as_stored(files, storage):
    model, path = files("t2v", "fp8_scaled")
    inputs = tiny_inputs(model)
    resident_dit = load_dit(path)
    resident = _run(resident_dit, inputs)
    dit = load_streamed_dit(path, BlockStreaming(blocks_on_device=1, storage=storage), device="cpu")
    seen = []
    dit.blocks[1].register_forward_pre_hook(lambda m, a: seen.append((m.ffn[0].weight.dtype, m.ffn[0].weight_scale)))
    assert torch.equal(_run(dit, inputs), resident)
    dtype, scale = seen[0]
    assert dtype == torch.float8_e4m3fn and scale is not None  # copied in as stored, cast per layer when it runs
    assert {p.dtype for p in dit.parameters()} == {p.dtype for p in resident_dit.parameters()}


def _lora(model, seed: int):
    patches = random_patches(model, block_modules(model) + list(GLOBAL_LINEARS), seed=seed)
    return lora_from_tensors(comfy_lora(patches), f"tiny_lora_{seed}.safetensors")


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("mode", ["on_the_fly", "merge"])
def test_loras_on_a_streamed_model(files, storage, mode):
    model, path = files("t2v", "fp8_scaled")
    inputs = tiny_inputs(model)
    loras = [(_lora(model, 1), 0.8), (_lora(model, 2), -0.5)]
    resident = _run(apply_loras(load_dit(path), loras, mode=mode), inputs)
    base = load_streamed_dit(path, BlockStreaming(blocks_on_device=1, storage=storage), device="cpu")
    base_out = _run(base, inputs)
    patched = apply_loras(base, loras, mode=mode)
    assert streamer_of(patched) is not streamer_of(base)  # the copy streams itself
    assert torch.equal(_run(patched, inputs), resident)
    assert not torch.equal(resident, base_out)
    # The base model is untouched and still runs (it becomes its device's active model again).
    assert torch.equal(_run(base, inputs), base_out)
    assert torch.equal(_run(patched, inputs), resident)


@pytest.mark.parametrize("storage", STORAGES)
def test_two_experts_switch_with_one_copy(files, tmp_path, storage):
    """A short Wan2.2-style run: high-noise expert, then low-noise expert (each its own file)."""
    high_model, high_path = files("t2v")
    low_path = save_tiny_dit(tmp_path, "comfy_prefixed", "t2v", model=make_tiny_diffusers_dit("t2v", seed=7))
    g = torch.Generator().manual_seed(3)
    positive, negative = [torch.randn(9, TEXT_DIM, generator=g)], [torch.randn(5, TEXT_DIM, generator=g)]
    settings = SamplerSettings(steps=4, cfg=3.0, shift=5.0, boundary=0.8, solver="unipc")

    def run(high, low):
        return sample(high, positive, negative, settings=settings, shape=(1, 16, 3, 4, 6), dit_low_noise=low)

    resident = run(load_dit(high_path), load_dit(low_path))
    options = BlockStreaming(blocks_on_device=1, storage=storage)
    high, low = (load_streamed_dit(p, options, device="cpu") for p in (high_path, low_path))
    streamers = streamer_of(high), streamer_of(low)
    both_active = []
    for dit, other in ((high, streamers[1]), (low, streamers[0])):
        dit.register_forward_pre_hook(lambda m, a, other=other: both_active.append(bool(other.loaded_units())))
    streamed = run(high, low)
    assert torch.equal(streamed, resident)
    assert not any(both_active)  # the inactive expert had nothing on the device during the other's steps
    # Set-up onloads each once; the run switches to high (first step) and to low (at the boundary) once each.
    assert [s.onloads for s in streamers] == [2, 2]
    assert len(both_active) == 2 * settings.steps  # guidance: two calls per step


def test_public_api_and_compiled_blocks(files):
    """kinema.load_dit(..., streaming=...) streams; with compile=True too (aot_eager: the same graphs
    as eager, one graph for every block although each streamed block brings fresh tensors)."""
    import kinema
    from torch._dynamo.utils import counters

    model, path = files("t2v")
    inputs = tiny_inputs(model)
    options = kinema.BlockStreaming(blocks_on_device=1, storage="mmap")
    assert torch.equal(_run(kinema.load_dit(path, streaming=options), inputs), _run(load_dit(path), inputs))
    torch._dynamo.reset()
    counters.clear()
    compiled = load_streamed_dit(path, options, device="cpu").compile_blocks(backend="aot_eager")
    reference = load_dit(path).compile_blocks(backend="aot_eager")
    assert torch.equal(_run(compiled, inputs), _run(reference, inputs))
    assert torch.equal(_run(compiled, inputs), _run(reference, inputs))
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])


def test_the_loader_node_streams_on_request(files, monkeypatch):
    from kinema.nodes import host
    from kinema.nodes.loaders import KinemaDiTLoader

    model, path = files("t2v")
    spec = KinemaDiTLoader.INPUT_TYPES()["optional"]
    assert spec["blocks_on_device"][1]["default"] == -1  # optional: saved workflows load without it
    monkeypatch.setattr(host, "model_path", lambda folder, name: path)
    monkeypatch.setattr(host, "torch_device", lambda: torch.device("cpu"))
    plain, _ = KinemaDiTLoader().load(path.name, "default", "sdpa")  # a workflow saved before the input existed
    streamed, _ = KinemaDiTLoader().load(path.name, "default", "sdpa", blocks_on_device=1)  # (dit, native MODEL)
    assert streamer_of(plain.model) is None and streamer_of(streamed.model).plan.on_device == 1
    inputs = tiny_inputs(model)
    assert torch.equal(_run(streamed.model, inputs), _run(plain.model, inputs))
