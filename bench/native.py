"""Our WanDiT beside native ComfyUI's own WanModel: the same random-weight file (ComfyUI layout),
the same inputs, one process, interleaved rounds, medians.

    python -m bench --only native [--quick] [--rounds N]

Models (each written by `bench.big_checkpoint`, loaded by our `load_dit` and by ComfyUI's own
classes, then deleted):
- Wan2.1 1.3B at full width and depth (30 blocks), a bf16 file and an fp32 file, at 1,280 and
  5,184 tokens;
- two full-width Wan 14B blocks from a scaled-fp8 file at 1,280 tokens, eager and with compiled
  blocks (`compile_blocks()`, inductor; the compile time, taken on the first call, is in the note).
The fp32 file computes in fp32; the bf16 and fp8 files compute in the bench dtype: bf16 on a GPU,
fp32 on the CPU, where native ComfyUI itself never computes in bf16 ("extremely slow" there, its
code says: it casts a bf16 file's weights to fp32 when loading, while ours keep bf16 weights and
upcast each layer as it runs). --quick: 4 blocks of 1.3B and 1 of 14B, 1,280 tokens only.

Native runs with the attention native ComfyUI picks on this machine (named in the rows); where
that is not SDPA, the 1,280-token cases also get a row with both sides on SDPA. Ours always
runs SDPA. Notes give the CPU-time ratio (steadier than wall time on a shared machine) and
max|ours - native| / max|native| (both implement the same model; bf16 differs more because
native keeps its residual stream in bf16, ours in fp32).

Each case times ours two ways: a *step* as our sampler runs one (the prompt embedded and the text
keys and values computed once per run by `prepare_context`, before the timed rounds) and a raw
*forward* (the context passed as is, so the call computes them, as native does in every step).
The two outputs must be bit-identical (the bench stops otherwise). Native ComfyUI has no such
cache: its step is its forward.

summary: native_ratio_bf16 and native_ratio_fp8 are ours / native wall time per step with both on
SDPA at 1,280 tokens; compile_ratio is our compiled blocks over our eager blocks (a step each) on
the fp8 14B case.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Optional

import torch

from kinema.core.dit import load_dit

from .big_checkpoint import temporary_wan_checkpoint
from .comfy_native import ComfyWan, import_comfy, load_native_wan, native_call
from .timing import Row, interleaved_timings

TEXT_ROWS = 512  # umT5 context rows, as the text encoder pads them
SDPA = "pytorch"  # ComfyUI's name for its SDPA attention function
_SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Case:
    latent: tuple[int, int, int]  # latent (frames, height, width) before the 1x2x2 patch
    summary_key: Optional[str] = None  # the summary figure this case's both-SDPA ratio gives
    compiled: bool = False  # also time our model with compiled blocks (gives compile_ratio)

    @property
    def tokens(self) -> int:
        f, h, w = self.latent
        return f * (h // 2) * (w // 2)


@dataclass(frozen=True)
class Model:
    """One file and the cases run on it."""

    label: str
    preset: str
    layers: int
    layout: str
    file_dtype: torch.dtype  # every tensor ("comfy"), or those not in fp8 ("comfy_fp8_scaled")
    compute_dtype: Optional[torch.dtype]  # None = the bench dtype
    cases: tuple[Case, ...]


L1280, L5184 = (5, 32, 32), (9, 48, 48)


def _models(quick: bool) -> list[Model]:
    wide = 4 if quick else 30
    sizes = (Case(L1280),) if quick else (Case(L1280), Case(L5184))
    bf16 = (Case(L1280, "native_ratio_bf16"),) + sizes[1:]
    return [
        Model(f"1.3B x{wide}", "1.3B", wide, "comfy", torch.bfloat16, None, bf16),
        Model(f"1.3B x{wide}", "1.3B", wide, "comfy", torch.float32, torch.float32, sizes),
        Model(f"14B x{1 if quick else 2}", "14B", 1 if quick else 2, "comfy_fp8_scaled", torch.bfloat16, None,
              (Case(L1280, "native_ratio_fp8", compiled=True),)),
    ]


def run(quick: bool, device: torch.device, dtype: torch.dtype, rounds: int) -> tuple[list[Row], dict]:
    comfy = import_comfy(device)
    if isinstance(comfy, str):
        print(f"native: skipped: {comfy}")
        return [], {}
    print(f"native: ComfyUI at {comfy.checkout}; native attention on this machine: {comfy.picked_attention}")
    rows: list[Row] = []
    summary: dict[str, Optional[float]] = {"native_ratio_bf16": None, "native_ratio_fp8": None, "compile_ratio": None}
    for model in _models(quick):
        compute_dtype = model.compute_dtype or dtype
        with temporary_wan_checkpoint(model.preset, model.layout, dtype=model.file_dtype,
                                      num_layers=model.layers) as path:
            ours = load_dit(path, device=device, compute_dtype=compute_dtype)
            native = load_native_wan(comfy, path, ours.config, compute_dtype, device)
            for case in model.cases:
                compiled = None
                if case.compiled:  # a second copy (the file is memory-mapped: weights are shared pages)
                    compiled = load_dit(path, device=device, compute_dtype=compute_dtype).compile_blocks()
                case_rows, compile_row = _time_case(comfy, model, case, ours, native, compute_dtype, device,
                                                    rounds, compiled)
                rows += case_rows
                if case.summary_key is not None:
                    summary[case.summary_key] = case_rows[-1].ratio  # the step, both on SDPA
                if compile_row is not None:
                    rows.append(compile_row)
                    summary["compile_ratio"] = compile_row.ratio
                del compiled
            del ours, native
            gc.collect()
    return rows, summary


def _time_case(comfy: ComfyWan, model: Model, case: Case, ours, native, dtype: torch.dtype,
               device: torch.device, rounds: int, compiled=None) -> tuple[list[Row], Optional[Row]]:
    """Rows of ours against native (each attention), and of our compiled blocks against our eager
    ones when `compiled` (the same model with `compile_blocks()`) is given. The last row of the
    first list is the summary's: a sampling step, both on SDPA."""
    generator = torch.Generator().manual_seed(0)
    f, h, w = case.latent
    x = torch.randn(1, 16, f, h, w, generator=generator).to(device, dtype)  # [B, C, T, H, W]
    t = torch.tensor([500.0], device=device)  # [B]
    context = torch.randn(1, TEXT_ROWS, 4096, generator=generator).to(device, dtype)  # [B, 512, text_dim]
    picked = comfy.picked_attention
    natives = {picked: native_call(native, {})}
    if picked != SDPA and case.summary_key is not None:
        natives[SDPA] = native_call(native, comfy.sdpa_options())
    with torch.inference_mode():
        # A sampling step as each side runs it: our sampler embeds the prompt and computes the text
        # keys and values once per run (`prepare_context`, outside the timed steps); native
        # ComfyUI computes them in every step. "ours, raw" is one forward that computes them too.
        prepared = ours.prepare_context(context)
        calls = {"ours": lambda: ours(x, t, prepared), "ours, raw": lambda: ours(x, t, context),
                 **{name: (lambda call=call: call(x, t, context)) for name, call in natives.items()}}
        if compiled is not None:
            compiled_prepared = compiled.prepare_context(context)  # a prepared context belongs to its model
            calls["compiled"] = lambda: compiled(x, t, compiled_prepared)
        # The first call of each is the warm-up round (the compile, for compiled blocks); its
        # outputs are compared.
        outputs, first_call_s = {}, {}
        for call_name, call in calls.items():
            start = time.perf_counter()
            outputs[call_name] = call().float()
            first_call_s[call_name] = time.perf_counter() - start
        eager = outputs.pop("ours")
        if not torch.equal(eager, outputs.pop("ours, raw")):
            raise AssertionError("the prepared context changed our output; it must be bit-identical to the raw one")
        reference = outputs[SDPA if SDPA in outputs else picked]
        difference = ((eager - reference).abs().max() / reference.abs().max()).item()
        compiled_difference = None
        if compiled is not None:
            compiled_difference = ((outputs.pop("compiled") - eager).abs().max() / eager.abs().max()).item()
        del outputs, reference, eager
        timings = interleaved_timings(calls, device, rounds, warmup=0)
    stored = "fp8" if model.layout == "comfy_fp8_scaled" else _SHORT[model.file_dtype]
    name = f"{model.label} {stored}>{_SHORT[dtype]}, L={case.tokens}"  # file dtype > compute dtype
    rows = []
    for ours_call, what in (("ours, raw", "forward"), ("ours", "step")):
        for attention in natives:
            both = "both SDPA" if attention == SDPA else f"native {attention}"
            cpu_ratio = timings[ours_call].cpu_s / timings[attention].cpu_s
            rows.append(Row("native", f"{name}, {what}, {both}", timings[ours_call].wall_s,
                            timings[attention].wall_s,
                            f"vs ComfyUI WanModel ({attention} attention); {_WHAT[what]}; CPU-time ratio "
                            f"{cpu_ratio:.3f}; max|ours-native|/max {difference:.1e}"))
    compile_row = None
    if compiled is not None:
        compile_row = Row("native", f"{name}, compiled / eager (ours)", timings["compiled"].wall_s,
                          timings["ours"].wall_s,
                          f"compiled blocks over our eager ones, a step each; first call (compile) "
                          f"{first_call_s['compiled']:.1f} s; CPU-time ratio "
                          f"{timings['compiled'].cpu_s / timings['ours'].cpu_s:.3f}; "
                          f"max|compiled-eager|/max {compiled_difference:.1e}")
    return rows, compile_row


_WHAT = {"forward": "ours given the raw context, like native (text keys/values computed in the call)",
         "step": "ours given the context prepared once per run, as our sampler calls it"}
