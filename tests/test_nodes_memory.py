"""nodes/memory.py on the CPU: the placement policy fed by ComfyUI's memory facts, and the residencies that
ComfyUI's model manager drives (load, unload, sizes), with the `meta` device standing in for a GPU where
weights must really move. The same code inside a real ComfyUI: tests/test_host_memory.py."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from kinema.core.dit import load_dit
from kinema.core.dit.streaming import BlockStreaming, copies, stream_blocks, streamer_of
from kinema.nodes import host
from kinema.nodes.memory import (ALL_BLOCKS, ModuleResidency, StreamedResidency, dit_streaming, handle_of, manage_dit,
                                 manage_text_encoder)
from tiny_dit import make_tiny_diffusers_dit, save_tiny_dit, tiny_inputs

GIB = 2**30
CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


@pytest.mark.parametrize("device, mode, blocks_on_device, expected", [
    (CUDA, "normal", -1, BlockStreaming(device_budget=9 * GIB)),  # free 10 GiB less 1 GiB reserved
    (CUDA, "lowvram", -1, BlockStreaming(device_budget=9 * GIB)),
    (CUDA, "novram", -1, BlockStreaming(blocks_on_device=0)),
    (CUDA, "highvram", -1, BlockStreaming(blocks_on_device=ALL_BLOCKS)),
    (CUDA, "normal", 7, BlockStreaming(blocks_on_device=7)),  # the node's input wins
    (CPU, "normal", -1, None),  # --cpu: the weights are where they run
    (CPU, "lowvram", -1, BlockStreaming(device_budget=9 * GIB)),
    (CPU, "novram", -1, BlockStreaming(blocks_on_device=0)),
    (CPU, "novram", 2, BlockStreaming(blocks_on_device=2)),
])
def test_placement_follows_comfyuis_free_memory_reserve_and_vram_mode(device, mode, blocks_on_device, expected):
    memory = host.DeviceMemory(device, mode, free_bytes=10 * GIB, reserved_bytes=GIB)
    assert dit_streaming(memory, blocks_on_device) == expected


def test_a_budget_at_or_below_the_reserve_still_reaches_the_planner():
    """The planner, not the policy, refuses a budget too small (naming the minimum)."""
    memory = host.DeviceMemory(CUDA, "normal", free_bytes=GIB, reserved_bytes=2 * GIB)
    assert dit_streaming(memory) == BlockStreaming(device_budget=1)


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def test_module_residency_moves_whole_and_gives_the_home_tensors_back():
    net = _net()
    homes = {name: t for name, t in net.state_dict(keep_vars=True).items()}
    residency = ModuleResidency(net, torch.device("meta"))  # stands in for a GPU
    size = sum(t.numel() * t.element_size() for t in homes.values())
    assert (residency.size(), residency.loaded(), residency.is_loaded()) == (size, 0, False)
    residency.load()
    assert all(t.device.type == "meta" for t in net.state_dict().values())
    assert (residency.loaded(), residency.is_loaded()) == (size, True)
    residency.unload()
    assert all(t is homes[name] for name, t in net.state_dict(keep_vars=True).items())  # no copy back
    assert residency.loaded() == 0


def test_module_residency_on_the_cpu_only_keeps_the_books():
    net = _net()
    before = dict(net.state_dict(keep_vars=True))
    residency = ModuleResidency(net, CPU)
    residency.load()
    assert residency.loaded() == residency.size() and dict(net.state_dict(keep_vars=True)) == before
    residency.unload()
    assert residency.loaded() == 0 and dict(net.state_dict(keep_vars=True)) == before


def test_text_encoder_visits_the_device_for_each_encode_only():
    class Encoder:  # core.text.TextEncoder's shape: a module and encode_ids
        def __init__(self):
            self.model = _net()

        def encode_ids(self, ids):
            return {t.device.type for t in self.model.parameters()}

    encoder = manage_text_encoder(Encoder(), "umt5", torch.device("meta"))
    assert encoder.encode_ids([[1]]) == {"meta"}
    assert {t.device.type for t in encoder.model.parameters()} == {"cpu"}
    assert handle_of(encoder.model).loaded() == 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = make_tiny_diffusers_dit("t2v", num_layers=4)
    folder = tmp_path_factory.mktemp("experts")
    paths = [save_tiny_dit(folder / name, "comfy", "t2v", model=model) for name in ("high", "low")]
    return model, paths


def _streamed(path, kept: int):
    dit = load_dit(path)
    stream_blocks(dit, BlockStreaming(blocks_on_device=kept, storage="mmap"), CPU)
    return dit


def _forward(dit, model):
    inputs = {k: v for k, v in tiny_inputs(model).items() if v is not None}
    with torch.inference_mode():
        return dit(**inputs)


def test_streamed_residency_sizes_unload_and_reload_give_the_same_output(tiny):
    model, (path, _) = tiny
    dit = _streamed(path, kept=2)
    residency = StreamedResidency(dit)
    plan = streamer_of(dit).plan
    assert residency.size() == plan.weight_bytes
    assert residency.loaded() == plan.other_bytes + sum(plan.block_bytes[:2]) and residency.is_loaded()
    before = _forward(dit, model)
    residency.unload()
    assert (residency.loaded(), residency.is_loaded(), streamer_of(dit).device_bytes()) == (0, False, 0)
    residency.load()
    assert residency.loaded() == plan.other_bytes + sum(plan.block_bytes[:2])
    assert torch.equal(_forward(dit, model), before)


def test_two_experts_take_turns_with_one_transfer_each(tiny):
    model, (high_path, low_path) = tiny
    high, low = _streamed(high_path, kept=4), _streamed(low_path, kept=4)
    high_res, low_res = StreamedResidency(high), StreamedResidency(low)
    assert low_res.is_loaded() and not high_res.is_loaded()  # the last one streamed is the active one
    for _ in range(2):
        high_res.load()
        assert high_res.is_loaded() and not low_res.is_loaded() and streamer_of(low).device_bytes() == 0
        low_res.load()
        assert low_res.is_loaded() and streamer_of(high).device_bytes() == 0
    # one copy of the kept blocks at set-up, then one per switch to that expert: never a reload from the file
    assert (streamer_of(high).onloads, streamer_of(low).onloads) == (3, 3)


def test_an_interrupt_while_loading_leaves_nothing_half_moved(tiny, monkeypatch):
    model, (path, _) = tiny
    dit = _streamed(path, kept=3)
    residency = StreamedResidency(dit)
    reference = _forward(dit, model)
    residency.unload()
    real_start, calls = copies.start_copy, []

    def interrupted_on_the_second_block(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what ComfyUI's interrupt or an out-of-memory error does mid-way
        return real_start(*args, **kwargs)

    monkeypatch.setattr(copies, "start_copy", interrupted_on_the_second_block)
    with pytest.raises(KeyboardInterrupt):
        residency.load()
    assert (streamer_of(dit).device_bytes(), streamer_of(dit).loaded_units(), residency.is_loaded()) == (0, [], False)
    monkeypatch.setattr(copies, "start_copy", real_start)
    assert torch.equal(_forward(dit, model), reference)  # the next run loads it whole


def test_a_managed_dit_is_loaded_before_each_forward_and_copies_get_their_own_handle(tiny):
    model, (path, _) = tiny
    dit = manage_dit(_streamed(path, kept=1), "high.safetensors")
    residency = handle_of(dit)  # standalone the handle is the residency itself
    reference = _forward(dit, model)
    residency.unload()
    assert torch.equal(_forward(dit, model), reference) and residency.is_loaded()
    clone = copy.deepcopy(dit)  # what apply_loras does
    assert handle_of(clone) is not residency and handle_of(clone).dit is clone
    assert torch.equal(_forward(clone, model), reference)
