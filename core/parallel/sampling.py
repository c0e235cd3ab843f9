"""What a parallel run changes in the sampling engine (core.sampling.engine asks `active()`):

- the DiTs are parallelized (sequence split, FSDP) on first use;
- the text is rank 0's, broadcast, so every rank conditions on the same bits;
- guidance: with cfg=2 the conditional pass runs on cfg rank 0 and the unconditional on cfg rank 1,
  and both velocities are exchanged (the same sum as one process makes);
- step-cache skips are decided once per group of ranks computing the same call and shared;
- progress is reported by rank 0 only, and an interrupt seen by rank 0 stops every rank at the
  same check (each check is a collective, so no rank can run ahead into a collective that never comes);
- with windows=N the context windows of a step are spread over N ranks and every velocity is
  broadcast by its owner, then blended in the serial order (so the result equals the serial run).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional

import torch
import torch.distributed as dist

from ..progress import Cancelled, Progress
from .run import ParallelRun
from .setup import parallelize

def prepare_request(run: ParallelRun, request):
    """The request every rank samples: parallelized DiTs, rank 0's text."""
    plan = run.plan
    if plan.windows > 1:
        long = request.long_video
        if request.image is not None or (long is not None and long.drift_strength):
            raise ValueError("window-parallel sampling needs windows that do not wait for each other: image-"
                             "conditioned and drift-matched long videos take each window from the previous one "
                             "in the same step; drop windows= from the parallel plan for them")
        if plan.fsdp:
            raise ValueError("fsdp shards the weights over every rank, so every rank must run the same DiT calls; "
                             "window-parallel ranks run different windows: use fsdp with ulysses/ring/cfg only")
    models = {}
    for name in ("dit", "dit_low_noise"):
        model = getattr(request, name)
        if model is not None and getattr(model, "parallel_run", None) is not run:
            parallelize(model, run)
            model.parallel_run = run
        models[name] = model
    return replace(request, positive=_from_driver(request.positive), negative=_from_driver(request.negative),
                   **models)


def _from_driver(value):
    """Rank 0's encoded text on every rank (tensors travel on the CPU; the engine moves them)."""
    if not (torch.is_tensor(value) or isinstance(value, (list, tuple))):
        return value  # None, or a PromptSchedule (every rank builds the same one)
    box = [([x.cpu() for x in value] if isinstance(value, (list, tuple)) else value.cpu())
           if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def collective_progress(run: ParallelRun, progress: Progress) -> Progress:
    """Rank 0 reports and decides whether to stop; every rank stops at the same check."""
    driver = run.is_driver

    def check() -> None:
        stop, error = torch.zeros(1, device=run.device), None
        if driver:
            try:
                progress.check()
            except BaseException as raised:  # the host's interrupt exception, whatever its type
                stop[0], error = 1, raised
        dist.broadcast(stop, src=0)
        if error is not None:
            raise error
        if stop.item():
            raise Cancelled("interrupted on rank 0")

    def on_step(done: int, total: int, preview) -> None:
        if driver and progress.on_step is not None:
            progress.on_step(done, total, preview)

    return Progress(on_step=on_step, check_cancel=check)


def cfg_guidance(run: ParallelRun) -> Optional[Callable]:
    """`guided_velocity` with its two passes on the two ranks of the cfg axis; None without cfg=2."""
    if run.plan.cfg == 1:
        return None
    group, mine = run.group("cfg"), run.rank_in("cfg")

    def guided(predict, positive, negative, scale: float) -> torch.Tensor:
        if scale == 1:  # one pass: both ranks run it (the same bits), keeping every rank in step
            return predict(positive)
        if negative is None:
            raise ValueError(f"cfg={scale} needs a negative conditioning; pass one (e.g. the encoded "
                             "WAN_NEGATIVE_PROMPT) or set cfg=1.0 to sample without guidance.")
        velocity = predict(positive if mine == 0 else negative).contiguous()  # [B, C, T, H, W]
        v_pos, v_neg = (torch.empty_like(velocity) for _ in range(2))
        dist.all_gather([v_pos, v_neg], velocity, group=group)
        return v_neg + scale * (v_pos - v_neg)

    return guided


def agree(run: ParallelRun) -> Optional[Callable[[bool], bool]]:
    """Step-cache decisions of the ranks computing one window: the first of them (cfg rank 0, which holds
    the conditional pass that decides in one process) decides for all."""
    if run.plan.cfg * run.plan.sequence == 1:
        return None
    group = run.calls
    first = dist.get_global_rank(group, 0)

    def decide(skip: bool) -> bool:
        flag = torch.tensor([float(skip)], device=run.device)
        dist.broadcast(flag, src=first, group=group)
        return bool(flag.item())

    return decide


class WindowSpread:
    """Which rank of the `windows` axis computes window k (k mod N), and the broadcast of its velocity."""

    def __init__(self, run: ParallelRun):
        self.group, self.ranks, self.rank = run.group("windows"), run.plan.windows, run.rank_in("windows")

    def velocity(self, k: int, compute: Callable[[], torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        owner = k % self.ranks
        velocity = compute().contiguous() if owner == self.rank else torch.empty_like(like)
        dist.broadcast(velocity, src=dist.get_global_rank(self.group, owner), group=self.group)
        return velocity


def window_spread(run: ParallelRun) -> Optional[WindowSpread]:
    return WindowSpread(run) if run.plan.windows > 1 else None
