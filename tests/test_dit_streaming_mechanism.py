"""How block streaming moves weights (issue 14), checked from outside on tiny DiTs on the CPU: a
streamed block runs from a fresh private copy and gets its home tensors back afterwards, at most
prefetch + 1 streamed blocks are copied in at a time, the cross-attention key/value projections are
copied in only while a prompt is prepared, errors leave nothing behind, homes are private copies
for "cpu" and the loaded (memory-mapped) tensors for "mmap", and copies of a streamed model share
its tensors."""
from __future__ import annotations

import copy

import pytest
import torch

from kinema.core.dit import WanDiT, load_dit
from kinema.core.dit.streaming import BlockStreaming, stream_blocks, streamer_of
from kinema.core.dit.streaming.units import TEXT_PROJECTIONS, running_order
from tiny_dit import make_tiny_diffusers_dit, save_tiny_dit, tiny_inputs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = make_tiny_diffusers_dit("t2v", num_layers=5)
    return model, save_tiny_dit(tmp_path_factory.mktemp("t2v"), "comfy_prefixed", "t2v", model=model)


def _inputs(model) -> dict:
    return {k: v for k, v in tiny_inputs(model).items() if v is not None}


def _pointers(module) -> dict[str, int]:
    return {name: t.data_ptr() for name, t in module.state_dict(keep_vars=True).items()}


def _is_text(name: str) -> bool:
    """A block tensor of a cross-attention key/value projection (e.g. `cross_attn.norm_k.weight`)."""
    parts = name.split(".")
    return parts[0] == "cross_attn" and parts[1] in TEXT_PROJECTIONS


def _text_parameters(block) -> list[torch.Tensor]:
    return [p for name, p in block.named_parameters() if _is_text(name)]


@pytest.mark.parametrize("prefetch", [0, 1, 2])
def test_blocks_run_from_fresh_copies_within_the_prefetch_depth(tiny, prefetch):
    model, path = tiny
    dit = load_dit(path)
    homes = [_pointers(block) for block in dit.blocks]
    streamer = stream_blocks(dit, BlockStreaming(blocks_on_device=1, prefetch=prefetch, storage="mmap"), "cpu")
    kept = _pointers(dit.blocks[0])
    assert all(kept[name] != homes[0][name] for name in kept if not _is_text(name))
    seen = []

    def look(block, index):
        inside = _pointers(block)
        seen.append((index, list(streamer.loaded_units()),
                     all(inside[n] != homes[index][n] for n in inside if not _is_text(n)),  # copied in
                     all(inside[n] == homes[index][n] for n in inside if _is_text(n))))  # not needed here

    for i, block in enumerate(dit.blocks):
        block.register_forward_pre_hook(lambda m, a, i=i: look(m, i))  # runs after the streamer's own hook
    with torch.inference_mode():
        dit(**_inputs(model))
    assert [index for index, *_ in seen] == list(range(5))
    for index, loaded, copied, text_at_home in seen:
        streamed_loaded = [name for name in loaded if name != "blocks.0"]
        assert f"blocks.{index}" in loaded and copied and text_at_home
        assert len(streamed_loaded) <= prefetch + 1
        # the next `prefetch` blocks are on their way already
        assert all(f"blocks.{j}" in loaded for j in range(max(index, 0) + 1, min(index + 1 + prefetch, 5)))
    assert streamer.loaded_units() == ["blocks.0"]
    assert [_pointers(block) for block in dit.blocks[1:]] == homes[1:]  # released: the homes are back


def test_text_projections_are_exactly_what_keys_values_reads(tiny):
    """TEXT_PROJECTIONS is a fact about the model's code: its forward (with a prepared prompt) never
    reads them, and keys_values reads nothing else."""
    model, path = tiny
    inputs = _inputs(model)
    dit = load_dit(path)
    with torch.inference_mode():
        prepared = dit.prepare_context(inputs["context"])
        expected = dit(inputs["x"], inputs["t"], prepared)
        keys_values = dit.blocks[0].cross_attn.keys_values(prepared.text, None)
        for block in dit.blocks:
            for p in _text_parameters(block):
                p.fill_(float("nan"))
        assert torch.equal(dit(inputs["x"], inputs["t"], prepared), expected)

        fresh = load_dit(path)
        block = fresh.blocks[0]
        text = {id(p) for p in _text_parameters(block)}
        assert text
        for p in block.parameters():
            if id(p) not in text:
                p.fill_(float("nan"))
        again = block.cross_attn.keys_values(prepared.text, None)
    assert torch.equal(again.k, keys_values.k) and torch.equal(again.v, keys_values.v)


def test_preparing_a_prompt_copies_each_blocks_text_projections_in_for_the_call(tiny):
    model, path = tiny
    dit = load_dit(path)
    homes = [block.cross_attn.k.weight.data_ptr() for block in dit.blocks]
    stream_blocks(dit, BlockStreaming(blocks_on_device=2, storage="mmap"), "cpu")
    during = []
    for i, block in enumerate(dit.blocks):
        block.cross_attn.k.register_forward_pre_hook(
            lambda m, a, i=i: during.append(m.weight.data_ptr() != homes[i]))
    with torch.inference_mode():
        dit.prepare_context(_inputs(model)["context"])
    assert during == [True] * 5  # kept blocks too: the text projections are never kept on the device
    assert [block.cross_attn.k.weight.data_ptr() for block in dit.blocks] == homes


def test_an_error_inside_the_forward_leaves_no_streamed_block_behind(tiny):
    model, path = tiny
    dit = load_dit(path)
    streamer = stream_blocks(dit, BlockStreaming(blocks_on_device=1, prefetch=2, storage="mmap"), "cpu")

    def fail(module, args):
        raise RuntimeError("interrupted")

    handle = dit.blocks[2].register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="interrupted"), torch.inference_mode():
        dit(**_inputs(model))
    assert streamer.loaded_units() == ["blocks.0"]
    handle.remove()
    with torch.inference_mode():
        assert torch.equal(dit(**_inputs(model)), load_dit(path)(**_inputs(model)))


@pytest.mark.parametrize("storage", ["cpu", "mmap"])
def test_homes_are_private_copies_or_the_loaded_tensors(tiny, storage):
    _, path = tiny
    dit = load_dit(path)
    before = [_pointers(block) for block in dit.blocks]
    stream_blocks(dit, BlockStreaming(blocks_on_device=2, storage=storage), "cpu")
    after = [_pointers(block) for block in dit.blocks]
    streamed_text_or_body = [after[i][n] == before[i][n] for i in range(2, 5) for n in after[i]]
    assert all(streamed_text_or_body) if storage == "mmap" else not any(streamed_text_or_body)
    # Kept blocks: their bodies run from device copies, their homes (not visible now) are untouched.
    assert all(after[0][n] != before[0][n] for n in after[0] if not _is_text(n))


def test_a_copy_of_a_streamed_model_shares_its_tensors(tiny):
    model, path = tiny
    dit = load_dit(path)
    streamer = stream_blocks(dit, BlockStreaming(blocks_on_device=2, storage="cpu"), "cpu")
    twin = copy.deepcopy(dit)
    assert streamer_of(twin) is not streamer and streamer_of(twin).dit is twin
    assert [_pointers(b) for b in twin.blocks] == [_pointers(b) for b in dit.blocks]
    with torch.inference_mode():
        assert torch.equal(twin(**_inputs(model)), dit(**_inputs(model)))


def test_running_order_interleaves_vace_and_face_blocks(tmp_path):
    vace = load_dit(save_tiny_dit(tmp_path / "v", "comfy", "vace"))
    assert [u.name for u in running_order(vace)] == ["blocks.0", "vace_blocks.0", "blocks.1", "blocks.2",
                                                     "vace_blocks.1", "blocks.3"]
    animate = load_dit(save_tiny_dit(tmp_path / "a", "comfy", "animate"))
    assert [u.name for u in running_order(animate)] == ["blocks.0", "face_adapter.fuser_blocks.0", "blocks.1",
                                                        "blocks.2", "face_adapter.fuser_blocks.1", "blocks.3"]


def test_refusals(tiny):
    _, path = tiny
    dit = load_dit(path)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        stream_blocks(dit, BlockStreaming(storage="pinned"), "cpu")
    stream_blocks(dit, BlockStreaming(blocks_on_device=1), "cpu")
    with pytest.raises(ValueError, match="already streamed"):
        stream_blocks(dit, BlockStreaming(blocks_on_device=1), "cpu")
    with torch.device("meta"):
        elsewhere = WanDiT(dit.config)
    with pytest.raises(ValueError, match="load it on the CPU"):
        stream_blocks(elsewhere, BlockStreaming(blocks_on_device=1, storage="mmap"), "cpu")
