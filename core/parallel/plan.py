"""What a parallel run splits, and over how many processes: `ParallelPlan.parse("ulysses=4,cfg=2")`.

Dimensions (their product is the number of processes):
- `ulysses` / `ring`: the tokens of every DiT call are split into contiguous slices, one per rank;
  self-attention runs across the ranks by all-to-all (Ulysses: the head count must divide) or by
  passing keys and values round a ring (any head count). At most one of the two.
- `cfg`: 1 or 2; with 2 the conditional and unconditional passes of a step run on different ranks.
- `windows`: the context windows of a long video's step are spread over this many ranks.
- `fsdp`: shard every block's weights over all processes (`fully_shard`); composes with the rest.
"""
from __future__ import annotations

from dataclasses import dataclass

DIMENSIONS = ("windows", "cfg", "sequence")  # the device mesh's axes, outermost first


@dataclass(frozen=True)
class ParallelPlan:
    ulysses: int = 1
    ring: int = 1
    cfg: int = 1
    windows: int = 1
    fsdp: bool = False

    def __post_init__(self) -> None:
        for name in ("ulysses", "ring", "cfg", "windows"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"parallel {name} must be a whole number >= 1, got {value!r}")
        if self.ulysses > 1 and self.ring > 1:
            raise ValueError(f"choose ulysses={self.ulysses} or ring={self.ring}, not both: the tokens are split "
                             "one way (ring takes any head count, Ulysses is faster where the heads divide)")
        if self.cfg > 2:
            raise ValueError(f"cfg={self.cfg}: guidance has two passes (conditional, unconditional), so cfg is 1 or 2")

    @property
    def sequence(self) -> int:
        """Ranks that share the tokens of one DiT call."""
        return max(self.ulysses, self.ring)

    @property
    def sequence_mode(self) -> str:
        return "ring" if self.ring > 1 else "ulysses"

    @property
    def world_size(self) -> int:
        return self.windows * self.cfg * self.sequence

    @property
    def mesh_shape(self) -> tuple[int, int, int]:
        return self.windows, self.cfg, self.sequence

    def describe(self) -> str:
        parts = [f"{name}={getattr(self, name)}" for name in ("ulysses", "ring", "cfg", "windows")
                 if getattr(self, name) > 1]
        return ",".join(parts + (["fsdp"] if self.fsdp else [])) or "single process"

    @staticmethod
    def parse(text: str) -> "ParallelPlan":
        """`"ulysses=4,cfg=2"`, `"ring=3"`, `"cfg=2,fsdp"`, ... (see the module docstring)."""
        values: dict = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            name = name.strip()
            if name == "fsdp" and value.strip() in ("", "1", "true", "on"):
                values["fsdp"] = True
                continue
            if name not in ("ulysses", "ring", "cfg", "windows") or not value.strip().isdigit():
                raise ValueError(f"--parallel item {item!r} is not understood; write NAME=N with NAME one of "
                                 "ulysses, ring, cfg, windows, or the word fsdp, e.g. ulysses=4,cfg=2")
            values[name] = int(value)
        return ParallelPlan(**values)

    def check_world(self, world_size: int) -> None:
        if world_size != self.world_size:
            raise ValueError(
                f"the parallel plan {self.describe()} needs {self.world_size} processes "
                f"({' x '.join(map(str, self.mesh_shape))} = windows x cfg x sequence), but {world_size} were "
                f"started; start {self.world_size} (torchrun --nproc-per-node {self.world_size}) or change the plan")
