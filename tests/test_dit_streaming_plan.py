"""The streaming planner (issue 14): given a device budget in bytes it keeps the most blocks that fit
beside the other parts, the activation margin and the streaming buffers, says so in one line, and
refuses a budget below the minimum, naming it in bytes."""
from __future__ import annotations

import logging

import pytest
import torch

from kinema.core.dit import load_dit
from kinema.core.dit.config import DiTConfig
from kinema.core.dit.streaming import BlockStreaming, activation_margin, plan_streaming, stream_blocks
from tiny_dit import make_tiny_diffusers_dit, save_tiny_dit

MB = 10**6
BLOCK = 350 * MB  # about one Wan 14B block in fp8
OTHER = 250 * MB
MARGIN = 4000 * MB


def plan(budget, prefetch=1, blocks=40, **options):
    return plan_streaming([BLOCK] * blocks, OTHER, device="cuda:0", storage="pinned", prefetch=prefetch,
                          budget=budget, activation_margin=MARGIN, **options)


def test_everything_fits():
    p = plan(OTHER + MARGIN + 40 * BLOCK)
    assert (p.on_device, p.streamed, p.buffer_bytes) == (40, 0, 0)
    assert p.describe().startswith("40 of 40 blocks on cuda:0, none streamed; weights on device ~14.25 GB")


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_keeps_the_most_blocks_that_fit(prefetch):
    # k kept blocks need OTHER + MARGIN + k BLOCK + (prefetch + 1) BLOCK of buffers (while k < 40 - prefetch).
    for kept in (0, 1, 17, 30):
        exact = OTHER + MARGIN + (kept + prefetch + 1) * BLOCK
        assert plan(exact, prefetch).on_device == kept
        assert plan(exact + BLOCK - 1, prefetch).on_device == kept  # one byte short of the next block
        assert plan(exact - 1, prefetch).on_device == kept - 1 if kept else True


def test_plan_line():
    p = plan(OTHER + MARGIN + 32 * BLOCK)
    assert p.on_device == 30
    assert p.describe() == (
        "30 of 40 blocks on cuda:0, 10 streamed from pinned CPU memory (prefetch 1); weights on device ~11.45 GB "
        "(blocks 10.50 GB, other parts 0.25 GB, streaming buffers 0.70 GB), activation margin 4.00 GB, "
        "budget 15.45 GB")


@pytest.mark.parametrize("prefetch", [0, 1])
def test_a_budget_below_the_minimum_names_it(prefetch):
    minimum = OTHER + MARGIN + (prefetch + 1) * BLOCK
    assert plan(minimum, prefetch).on_device == 0
    with pytest.raises(ValueError, match=f"the minimum is {minimum} bytes") as error:
        plan(minimum - 1, prefetch)
    assert "prefetch=0" in str(error.value)


def test_block_count_and_no_budget():
    assert plan(None).on_device == 40  # no budget: every block stays
    assert plan(None, blocks_on_device=12).on_device == 12
    assert plan(None, blocks_on_device=99).on_device == 40
    mixed = plan_streaming([3, 9, 4, 5], 1, device="cpu", storage="mmap", blocks_on_device=1, prefetch=1)
    assert mixed.buffer_bytes == 2 * 9  # the largest streamed block, twice (running + prefetched)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="not both"):
        BlockStreaming(blocks_on_device=3, device_budget=10**9)
    with pytest.raises(ValueError, match="unknown storage"):
        BlockStreaming(storage="disk")
    with pytest.raises(ValueError, match="prefetch"):
        BlockStreaming(prefetch=-1)
    assert BlockStreaming().storage_for(torch.device("cpu")) == "mmap"
    assert BlockStreaming().storage_for(torch.device("cuda")) == "pinned"


def test_activation_margin_of_wan_14b():
    # 832x480x81 frames -> 21 x 30 x 52 tokens; per token 2 x 5120 x 4 (fp32 residual twice) + 4 x 5120 x 2
    # (bf16 q, k, v, out) + 13824 x 2 (FFN hidden); two prompts x 40 blocks x (k, v) x 512 x 5120 x 2 bytes.
    wan14b = DiTConfig(dim=5120, ffn_dim=13824, num_layers=40, num_heads=40, in_dim=16, out_dim=16)
    assert activation_margin(wan14b, torch.bfloat16) == 32760 * 109568 + 838860800


def test_stream_blocks_plans_from_a_budget_and_logs_the_line(tmp_path, caplog):
    dit = load_dit(save_tiny_dit(tmp_path, "comfy_prefixed", "t2v", model=make_tiny_diffusers_dit(num_layers=4)))
    blocks = sum(p.numel() * p.element_size() for name, p in dit.blocks[0].named_parameters()
                 if not name.startswith(("cross_attn.k.", "cross_attn.v.", "cross_attn.norm_k.")))
    other = sum(p.numel() * p.element_size() for name, p in dit.named_parameters() if not name.startswith("blocks."))
    budget = other + 3 * blocks + 2 * 256 * 30  # one block kept + 2 buffers (+ alignment slack of ~30 tensors)
    with caplog.at_level(logging.INFO, logger="kinema.core.dit.streaming"):
        streamer = stream_blocks(dit, BlockStreaming(device_budget=budget, activation_margin=0), "cpu")
    assert streamer.plan.on_device == 1 and streamer.plan.other_bytes == other
    assert "1 of 4 blocks on cpu, 3 streamed from the memory-mapped file (prefetch 1)" in caplog.text
