"""What the demo trainers share: run folders with resumable checkpoints, a log, EMA, file export.

A training run can be stopped at any moment (the session that runs it has a hard time limit)
and continued later with `--resume`: checkpoints are written atomically every few minutes and
every random draw of step n depends only on (seed, n), so a resumed run sees the same batches.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import save_file

KEEP_CHECKPOINTS = 2


class RunDir:
    """A run's folder: `ckpt_<step>.pt` files and `log.txt`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def checkpoints(self) -> list[Path]:
        return sorted(self.path.glob("ckpt_*.pt"), key=lambda p: int(p.stem.split("_")[1]))

    def latest(self) -> Optional[dict]:
        found = self.checkpoints()
        return torch.load(found[-1], map_location="cpu", weights_only=False) if found else None

    def save(self, state: dict, step: int) -> Path:
        path = self.path / f"ckpt_{step:07d}.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # a crash mid-write never leaves a broken "latest" checkpoint
        for old in self.checkpoints()[:-KEEP_CHECKPOINTS]:
            old.unlink()
        return path

    def log(self, line: str) -> None:
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}"
        print(stamped, flush=True)
        with open(self.path / "log.txt", "a") as f:
            f.write(stamped + "\n")


def add_run_arguments(parser, run: str) -> None:
    """The options every demo trainer takes: threads, resume, run folder, checkpoint cadence."""
    # One thread by default: with cores shared between processes, OpenMP workers spin waiting for each other.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint of the run")
    parser.add_argument("--run", default=run, help="run folder name under demo_model/runs/")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)


def open_run(args, runs: Path) -> "RunDir":
    """Apply the thread count and open the run folder named by `add_run_arguments`' options."""
    torch.set_num_threads(args.threads)
    return RunDir(runs / args.run)


class Timer:
    """True every `seconds` of wall time (checkpoint cadence)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.last = time.time()

    def due(self) -> bool:
        if time.time() - self.last >= self.seconds:
            self.last = time.time()
            return True
        return False


def start_or_resume(run: RunDir, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    resume: bool) -> tuple[dict[str, torch.Tensor], int, Optional[dict]]:
    """(EMA weights, step, the checkpoint resumed from or None). With `resume`, the run's latest
    checkpoint is loaded into `model` and `optimizer`; a fresh start is refused when the folder
    already holds checkpoints, so a forgotten --resume never overwrites a run."""
    state = run.latest() if resume else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        run.log(f"resumed at step {state['step']}")
        return state["ema"], state["step"], state
    if run.checkpoints():
        raise SystemExit(f"{run.path} already holds checkpoints; pass --resume to continue it or --run NAME for a new run")
    return {k: p.detach().clone() for k, p in model.named_parameters()}, 0, None


def checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: dict[str, torch.Tensor], step: int,
               args, **extra) -> dict:
    """What `RunDir.save` writes and `start_or_resume` reads back."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "ema": ema, "step": step,
            "args": vars(args), **extra}


@torch.no_grad()
def ema_update(ema: dict[str, torch.Tensor], model: torch.nn.Module, decay: float) -> None:
    for name, p in model.named_parameters():
        ema[name].lerp_(p.detach(), 1.0 - decay)


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: Optional[dict[str, str]] = None) -> None:
    """Write atomically (temp name + rename), contiguous CPU tensors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    tmp.chmod(0o644)  # safetensors creates the file owner-only; these are shipped, readable files
    os.replace(tmp, path)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The torch RNG of one training step: depends only on (seed, step), so resumes repeat it."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)
