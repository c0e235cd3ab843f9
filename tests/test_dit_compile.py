"""Compiled blocks (`dit.compile_blocks()`, `kinema.load_dit(..., compile=True)`, the loader's `compile`
input): the compiled model agrees with eager to fp32 rounding (1e-5 relative), every block runs the one
compiled graph (the layer index is not specialised), the compile time is logged, and a missing C++
compiler is a clear error.

Inductor on CPU takes a minute or more to build its kernels on two cores, so the inductor test is heavy
(KINEMA_HEAVY=1); CI runs the same checks through the `aot_eager` backend, which captures the same
graph with dynamo and AOTAutograd but runs it without code generation."""
from __future__ import annotations

import logging
import os

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

import kinema
from kinema.core.dit import DiTConfig, WanDiT, WanVACE

from tiny_dit import save_tiny_dit

HEAVY = os.environ.get("KINEMA_HEAVY") == "1"
REL_TOL = 1e-5
# Tiny on purpose: compile time barely depends on width, the test time does.
CONFIG = DiTConfig(dim=64, ffn_dim=128, num_layers=3, num_heads=2, in_dim=16, out_dim=16, text_dim=32, text_len=16)


def _random_dit(model_class=WanDiT, config: DiTConfig = CONFIG) -> WanDiT:
    torch.manual_seed(0)
    dit = model_class(config)
    with torch.no_grad():
        for p in dit.parameters():
            p.normal_(0, 0.2)
    return dit.requires_grad_(False).eval()


def _inputs(model: WanDiT) -> dict:
    g = torch.Generator().manual_seed(1)
    c = model.config
    inputs = dict(x=torch.randn(2, c.out_dim, 3, 8, 8, generator=g), t=torch.tensor([900.0, 250.0]),
                  context=[torch.randn(n, c.text_dim, generator=g) for n in (7, 12)])
    if c.is_vace:
        inputs["vace_context"] = torch.randn(2, c.vace_in_dim, 3, 8, 8, generator=g)
    return inputs


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref).abs().max() / ref.abs().max()).item()


def _eager_then_compiled(dit: WanDiT, backend: str, caplog) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = _inputs(dit)
    torch._dynamo.reset()
    counters.clear()
    with torch.inference_mode():
        prepared = dit.prepare_context(inputs.pop("context"))
        eager = dit(**inputs, context=prepared)
        dit.compile_blocks(backend=backend)
        with caplog.at_level(logging.INFO, logger="kinema.core.dit.compile"):
            compiled = dit(**inputs, context=prepared)
            again = dit(**inputs, context=prepared)  # reuses the compiled code: no second message
    assert torch.equal(compiled, again)
    messages = [r.getMessage() for r in caplog.records if "compiled" in r.getMessage()]
    blocks = len(dit.blocks) + len(getattr(dit, "vace_blocks", ()))
    assert len(messages) == 1 and messages[0].startswith(f"compiled {blocks} blocks in "), messages
    return eager, compiled


@pytest.mark.parametrize("model_class", [WanDiT, WanVACE])
def test_compiled_blocks_agree_with_eager_and_share_one_graph(model_class, caplog):
    config = CONFIG if model_class is WanDiT else DiTConfig(**{**CONFIG.__dict__, "vace_layers": (0, 2),
                                                               "vace_in_dim": 96})
    dit = _random_dit(model_class, config)
    eager, compiled = _eager_then_compiled(dit, "aot_eager", caplog)
    assert _relative_error(compiled, eager) <= REL_TOL
    # One graph for every main block (the layer index stays outside the compiled step); VACE's
    # control blocks are another block class, so they may take one more.
    assert counters["stats"]["unique_graphs"] == (1 if model_class is WanDiT else 2), dict(counters["stats"])


@pytest.mark.heavy
@pytest.mark.skipif(not HEAVY, reason="inductor builds C++ kernels: a minute or more on two cores; KINEMA_HEAVY=1 runs it")
def test_inductor_blocks_agree_with_eager_to_fp32_rounding(caplog):
    dit = _random_dit()
    eager, compiled = _eager_then_compiled(dit, "inductor", caplog)
    assert _relative_error(compiled, eager) <= REL_TOL
    assert counters["stats"]["unique_graphs"] == 1


def test_missing_cpp_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-kinema")
    with pytest.raises(RuntimeError, match="need a C\\+\\+ compiler.*no-such-compiler-kinema"):
        _random_dit().compile_blocks()


def test_load_dit_and_the_loader_node_offer_compile(tmp_path, monkeypatch):
    from tiny_dit import make_tiny_diffusers_dit
    from kinema.nodes import host
    from kinema.nodes.loaders import KinemaDiTLoader

    path = save_tiny_dit(tmp_path, "comfy", "t2v", model=make_tiny_diffusers_dit("t2v"))
    assert all(b.compile_backend is None for b in kinema.load_dit(path).blocks)
    assert all(b.compile_backend == "inductor" for b in kinema.load_dit(path, compile=True).blocks)

    spec = KinemaDiTLoader.INPUT_TYPES()
    assert spec["optional"]["compile"][0] == "BOOLEAN" and spec["optional"]["compile"][1]["default"] is False
    monkeypatch.setattr(host, "model_path", lambda folder, name: path)
    dit, _ = KinemaDiTLoader().load(path.name, "default", "sdpa", compile=True)  # (dit, native MODEL)
    assert all(b.compile_backend == "inductor" for b in dit.model.blocks)
    dit, _ = KinemaDiTLoader().load(path.name, "default", "sdpa")  # a workflow saved before the input existed
    assert all(b.compile_backend is None for b in dit.model.blocks)
