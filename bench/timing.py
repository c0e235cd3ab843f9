"""Fair timing of several callables on one machine: warm-up, interleaved rounds, medians."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Row:
    """One line of the bench table: our time against the reference's on the same inputs."""

    section: str
    case: str
    ours_s: float
    reference_s: float
    note: str = ""

    @property
    def ratio(self) -> float:  # ours / reference: < 1 means we are faster
        return self.ours_s / self.reference_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(
    fns: dict[str, Callable[[], object]], device: torch.device, rounds: int, warmup: int = 1
) -> dict[str, float]:
    """Median wall seconds per callable. Rounds alternate between the callables so that load from
    other processes on a shared machine hits all of them alike instead of biasing one."""
    return {name: timing.wall_s for name, timing in interleaved_timings(fns, device, rounds, warmup).items()}


@dataclass(frozen=True)
class Timing:
    """Medians of one callable over the rounds: wall seconds and this process's CPU seconds (all
    threads; steadier than wall time when other processes compete for the cores)."""

    wall_s: float
    cpu_s: float


def interleaved_timings(
    fns: dict[str, Callable[[], object]], device: torch.device, rounds: int, warmup: int = 1
) -> dict[str, Timing]:
    """`interleaved_medians` with the CPU time of each call as well."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            _sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            walls[name].append(time.perf_counter() - start)
            cpus[name].append(time.process_time() - cpu_start)
    return {name: Timing(statistics.median(walls[name]), statistics.median(cpus[name])) for name in fns}


def print_table(rows: list[Row]) -> None:
    header = f"{'section':<10} {'case':<44} {'ours (s)':>10} {'reference (s)':>14} {'ours/ref':>9}  note"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r.section:<10} {r.case:<44} {r.ours_s:>10.4f} {r.reference_s:>14.4f} {r.ratio:>9.3f}  {r.note}")
