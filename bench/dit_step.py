"""One DiT forward step: our WanDiT against diffusers' WanTransformer3DModel, same weights and inputs.

A diffusers model with Wan2.1-1.3B widths (dim 1536, 12 heads, FFN 8960) and random weights is
built, saved in its own folder layout, loaded with our `load_dit`, and both forwards are timed on
the same latents / timestep / 512-row text context in the same process. On CPU the layer count
and latent size are cut so that a run takes seconds; on a GPU the full 30-layer model runs at the
480p and 720p 81-frame latent sizes.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Optional

import torch

from kinema.core.dit import load_dit
from kinema.kernels.sparse3d import SparseSchedule, SparseWindow, density

from .timing import Row, interleaved_medians


@dataclass(frozen=True)
class Case:
    layers: int
    latent: tuple[int, int, int]  # latent (frames, height, width) before the 1x2x2 patch
    label: str
    sparse: Optional[SparseWindow] = None  # also time our DiT with sparse3d self-attention in every layer


CPU_QUICK = [Case(2, (5, 32, 32), "1.3B widths, 2 layers")]
CPU_FULL = CPU_QUICK + [Case(4, (9, 48, 48), "1.3B widths, 4 layers", SparseWindow((3, 8, 8), (1, 3, 3)))]
GPU = [
    Case(30, (21, 60, 104), "Wan2.1-1.3B 480p 81 f", SparseWindow((2, 8, 8), (5, 3, 5))),
    Case(30, (21, 90, 160), "Wan2.1-1.3B 720p 81 f", SparseWindow((2, 8, 8), (7, 4, 6))),
]


def _save_reference(folder: str, layers: int) -> None:
    from diffusers import WanTransformer3DModel  # test/bench-only dependency, the reference

    WanTransformer3DModel(
        num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
        text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=layers,
    ).save_pretrained(folder)


def _load_reference(folder: str, dtype: torch.dtype, device: torch.device):
    from diffusers import WanTransformer3DModel

    # torch_dtype (not .to(dtype)) keeps the modules diffusers wants in float32 there.
    return WanTransformer3DModel.from_pretrained(folder, torch_dtype=dtype).to(device).eval()


def _run_case(case: Case, device: torch.device, dtype: torch.dtype, rounds: int) -> list[Row]:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        _save_reference(folder, case.layers)
        reference = _load_reference(folder, dtype, device)
        ours = load_dit(folder, dtype=dtype, device=device, compute_dtype=dtype)
    f, h, w = case.latent
    x = torch.randn(1, 16, f, h, w, device=device, dtype=dtype)  # [B, C, T, H, W]
    t = torch.tensor([500.0], device=device)  # [B]
    context = torch.randn(1, 512, 4096, device=device, dtype=dtype)  # [B, 512, text_dim]
    grid = (f, h // 2, w // 2)

    def sparse_step():
        ours.set_attention_policy(SparseSchedule(case.sparse))
        try:
            return ours(x, t, context)
        finally:
            ours.set_attention_policy(None)

    steps = {
        "ours": lambda: ours(x, t, context),
        "reference": lambda: reference(hidden_states=x, timestep=t, encoder_hidden_states=context, return_dict=False)[0],
    }
    if case.sparse is not None:
        steps["ours_sparse"] = sparse_step
    with torch.inference_mode():
        error = (steps["ours"]().float() - steps["reference"]().float()).abs().max().item()
        medians = interleaved_medians(steps, device, rounds)
    del ours, reference
    name = f"{case.label}, L={grid[0] * grid[1] * grid[2]}, {str(dtype).removeprefix('torch.')}"
    rows = [Row("dit", name, medians["ours"], medians["reference"],
                f"dense, vs diffusers WanTransformer3DModel; max|ours-ref| {error:.1e}")]
    if case.sparse is not None:
        window = case.sparse
        rows.append(Row("dit", name + " sparse", medians["ours_sparse"], medians["reference"],
                        f"ours with sparse3d in all layers (tile {window.tile} window {window.window}, "
                        f"density {density(grid, window):.2f}) vs diffusers dense"))
    return rows


def run(quick: bool, device: torch.device, dtype: torch.dtype, rounds: int) -> tuple[list[Row], dict[str, float]]:
    cases = GPU if device.type == "cuda" else (CPU_QUICK if quick else CPU_FULL)
    rows, dense_ratio = [], None
    for case in cases:
        case_rows = _run_case(case, device, dtype, rounds)
        dense_ratio = case_rows[0].ratio  # the acceptance figure: dense, at the largest shape run
        rows += case_rows
    return rows, {"dit_ratio": dense_ratio}
