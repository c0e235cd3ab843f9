"""Prompt schedule: which encoded prompt drives which stretch of a long video.

Written as lines `<start seconds>: <prompt>`; each prompt holds until the next one starts. A
context window takes the prompt whose stretch contains the window's middle, and the blending of
overlapping windows turns each change of prompt into a transition over the overlap.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from .shapes import TEMPORAL_STRIDE
from .windows import Window

_LINE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:s)?\s*:\s*(.+?)\s*$")


@dataclass(frozen=True)
class PromptSegment:
    start_frame: int  # first video frame this prompt drives
    prompt: str
    positive: Any = None  # the encoded prompt ([B, L, D] tensor or list of [L_i, D]); None until encoded


@dataclass(frozen=True)
class PromptSchedule:
    segments: tuple[PromptSegment, ...]

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("a prompt schedule needs at least one prompt, e.g. '0: a red ball rolls to the right'.")
        if self.segments[0].start_frame != 0:
            raise ValueError(f"the first prompt must start at 0 s (it starts at video frame "
                             f"{self.segments[0].start_frame}); write '0: <prompt>' as the first line.")
        starts = [s.start_frame for s in self.segments]
        if any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(f"prompt start times must increase line by line; got video frames {starts}.")

    def index_for(self, window: Window) -> int:
        """The segment whose stretch holds the middle of `window` (latent frames)."""
        middle = (window.start + window.end - 1) / 2 * TEMPORAL_STRIDE  # in video frames
        index = 0
        for i, segment in enumerate(self.segments):
            if segment.start_frame <= middle:
                index = i
        return index

    def encoded(self, positives: Sequence[Any]) -> "PromptSchedule":
        """The same schedule with each segment's encoded prompt filled in (one per segment, in order)."""
        if len(positives) != len(self.segments):
            raise ValueError(f"got {len(positives)} encoded prompts for {len(self.segments)} schedule entries.")
        return PromptSchedule(tuple(PromptSegment(s.start_frame, s.prompt, p) for s, p in zip(self.segments, positives)))


def parse_schedule(text: str, fps: float) -> PromptSchedule:
    """Lines `<seconds>: <prompt>` (blank lines and lines starting with # are skipped) -> schedule."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0 to turn seconds into frames, got {fps!r}.")
    segments = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"prompt schedule line {number} {line.strip()!r} is not '<start seconds>: <prompt>'; "
                             "write e.g. '12.5: the ball turns blue'.")
        segments.append(PromptSegment(round(float(match.group(1)) * fps), match.group(2)))
    return PromptSchedule(tuple(segments))
