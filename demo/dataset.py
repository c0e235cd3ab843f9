"""Procedural captioned clips for the demo model: flat shapes moving over a flat background.

A clip is fully described by a `ClipSpec` (what is drawn) and rendered deterministically from it,
so a seed reproduces both the pixels and the caption. Captions come from templates with
paraphrases. `HELD_OUT` lists (object colour, background colour, direction) combinations that
training never sees; evaluation generates exactly those.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

SIZE = 64  # pixels per side
FRAMES = 17  # 1 + 4k frames: the Wan VAE's temporal stride is 4
FPS = 16

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 140, 10),
    "yellow": (240, 225, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "purple": (140, 40, 190),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
COLOURS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle", "star", "diamond")
DIRECTIONS = ("left", "right", "up", "down")
MOTIONS = DIRECTIONS + ("bouncing", "growing", "shrinking", "rotating")

# Unit vectors in image coordinates (x to the right, y downwards).
DIRECTION_VECTORS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


@dataclass(frozen=True)
class ObjectSpec:
    shape: str
    colour: str
    motion: str
    x: float  # centre at frame 0, pixels
    y: float
    radius: float  # circumradius at frame 0, pixels
    travel: float  # pixels moved over the clip (directions), bounce height, or size factor change
    angle: float  # orientation at frame 0, radians


@dataclass(frozen=True)
class ClipSpec:
    background: str
    objects: tuple[ObjectSpec, ...]


# ----------------------------------------------------------------------------------------------
# Held-out split


def _held_out_combinations(count: int = 16, seed: int = 20240611) -> frozenset:
    """`count` (object colour, background, direction) triples, at most one per colour pair.

    One triple per colour pair means every pair is still seen in training with the other three
    directions, and every (colour, direction) with other backgrounds: only the combination is new.
    The demo's default prompt (red on blue, right) stays in training.
    """
    rng = np.random.default_rng(seed)
    pairs = [(c, b) for c in COLOURS for b in COLOURS if c != b and (c, b) != ("red", "blue")]
    picked = rng.choice(len(pairs), size=count, replace=False)
    return frozenset((*pairs[i], DIRECTIONS[j % 4]) for j, i in enumerate(sorted(picked)))


HELD_OUT: frozenset = _held_out_combinations()


def is_held_out(spec: ClipSpec) -> bool:
    return any((o.colour, spec.background, o.motion) in HELD_OUT for o in spec.objects)


# ----------------------------------------------------------------------------------------------
# Sampling specs


def _sample_object(rng: np.random.Generator, colour: str, motion: str, shape: Optional[str] = None) -> ObjectSpec:
    if shape is None:
        # A rotating circle looks still; rotation is only asked of shapes where it shows.
        choices = SHAPES[1:] if motion == "rotating" else SHAPES
        shape = str(rng.choice(choices))
    radius = float(rng.uniform(7.0, 11.0))
    angle = float(rng.uniform(0, 2 * np.pi)) if shape != "circle" else 0.0
    margin = radius + 1.0
    if motion in DIRECTION_VECTORS:
        travel = float(rng.uniform(22.0, 32.0))
        dx, dy = DIRECTION_VECTORS[motion]
        # Start so that the whole path stays inside the frame.
        lo_x, hi_x = margin - min(dx, 0) * travel, SIZE - margin - max(dx, 0) * travel
        lo_y, hi_y = margin - min(dy, 0) * travel, SIZE - margin - max(dy, 0) * travel
        x, y = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
    elif motion == "bouncing":
        travel = float(rng.uniform(16.0, 26.0))  # bounce height; y is the floor contact
        x = rng.uniform(margin, SIZE - margin)
        y = rng.uniform(margin + travel, SIZE - margin)
    elif motion in ("growing", "shrinking"):
        travel = float(rng.uniform(1.6, 2.0))  # size factor between first and last frame
        if motion == "growing":
            radius = float(rng.uniform(5.0, 7.0))
        else:
            radius = float(rng.uniform(10.0, 13.0))
        big = radius * (travel if motion == "growing" else 1.0) + 1.0
        x, y = rng.uniform(big, SIZE - big), rng.uniform(big, SIZE - big)
    else:  # rotating
        travel = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0) * np.pi)  # total turn, radians
        radius = float(rng.uniform(10.0, 14.0))
        x, y = rng.uniform(radius + 1, SIZE - radius - 1), rng.uniform(radius + 1, SIZE - radius - 1)
    return ObjectSpec(shape, colour, motion, float(x), float(y), radius, travel, angle)


def sample_spec(rng: np.random.Generator, two_object_prob: float = 0.15) -> ClipSpec:
    """Any clip, held-out combinations included (see `sample_training_spec`)."""
    background = str(rng.choice(COLOURS))
    others = [c for c in COLOURS if c != background]
    n = 2 if rng.random() < two_object_prob else 1
    colours = rng.choice(others, size=n, replace=False)
    objects = tuple(_sample_object(rng, str(c), str(rng.choice(MOTIONS))) for c in colours)
    return ClipSpec(background, objects)


def sample_training_spec(rng: np.random.Generator, two_object_prob: float = 0.15) -> ClipSpec:
    while True:
        spec = sample_spec(rng, two_object_prob)
        if not is_held_out(spec):
            return spec


def held_out_spec(rng: np.random.Generator, colour: str, background: str, direction: str) -> ClipSpec:
    """A single-object clip of one given combination (ground truth for evaluation)."""
    return ClipSpec(background, (_sample_object(rng, colour, direction),))


# ----------------------------------------------------------------------------------------------
# Rendering

_SUPERSAMPLE = 3  # samples per pixel side: anti-aliased edges keep the VAE's job smooth


def _polygon(shape: str, radius: float, angle: float) -> np.ndarray:
    """Vertices `[N, 2]` of a shape centred at the origin."""
    if shape == "square":
        k, r = 4, np.full(4, radius)
    elif shape == "diamond":  # a rhombus, taller than wide
        k, r = 4, np.array([radius, 0.6 * radius, radius, 0.6 * radius])
    elif shape == "triangle":
        k, r = 3, np.full(3, radius)
    elif shape == "star":
        k, r = 10, np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    else:
        raise ValueError(f"no polygon for shape {shape!r}")
    theta = angle - np.pi / 2 + np.arange(k) * 2 * np.pi / k
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def _coverage(shape: str, cx: float, cy: float, radius: float, angle: float, size: int = SIZE) -> np.ndarray:
    """Fraction of each pixel `[size, size]` the shape covers (supersampled)."""
    n = size * _SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / _SUPERSAMPLE  # sample positions in pixel units
    px, py = coords[None, :] - cx, coords[:, None] - cy  # [1, n], [n, 1]
    if shape == "circle":
        inside = px**2 + py**2 <= radius**2
    else:
        # Even-odd rule over the edges: works for the non-convex star as well.
        verts = _polygon(shape, radius, angle)
        inside = np.zeros((n, n), dtype=bool)
        for (x0, y0), (x1, y1) in zip(verts, np.roll(verts, -1, axis=0)):
            if y0 == y1:
                continue
            crosses = (py < y0) != (py < y1)  # [n, 1]
            x_at = x0 + (py - y0) * (x1 - x0) / (y1 - y0)  # [n, 1]
            inside ^= crosses & (px < x_at)
    return inside.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))


def object_state(obj: ObjectSpec, u: float) -> tuple[float, float, float, float]:
    """(x, y, radius, angle) at clip time u in [0, 1]."""
    x, y, radius, angle = obj.x, obj.y, obj.radius, obj.angle
    if obj.motion in DIRECTION_VECTORS:
        dx, dy = DIRECTION_VECTORS[obj.motion]
        x, y = x + dx * obj.travel * u, y + dy * obj.travel * u
    elif obj.motion == "bouncing":
        y = y - obj.travel * abs(np.sin(2 * np.pi * u))  # two hops
    elif obj.motion == "growing":
        radius = radius * (1 + (obj.travel - 1) * u)
    elif obj.motion == "shrinking":
        radius = radius / (1 + (obj.travel - 1) * u)
    elif obj.motion == "rotating":
        angle = angle + obj.travel * u
    return x, y, radius, angle


def render(spec: ClipSpec, frames: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """uint8 video `[T, size, size, 3]`; another size draws the same clip at that resolution
    (the learned latent upsampler's sharp targets)."""
    background = np.array(PALETTE[spec.background], dtype=np.float32)
    scale = size / SIZE  # spec coordinates are in SIZE-pixel units
    video = np.empty((frames, size, size, 3), dtype=np.float32)
    for t in range(frames):
        frame = np.broadcast_to(background, (size, size, 3)).copy()  # [H, W, 3]
        for obj in spec.objects:
            x, y, radius, angle = object_state(obj, t / (frames - 1))
            alpha = _coverage(obj.shape, x * scale, y * scale, radius * scale, angle, size)[..., None]  # [H, W, 1]
            frame = frame * (1 - alpha) + np.array(PALETTE[obj.colour], dtype=np.float32) * alpha
        video[t] = frame
    return np.rint(video).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Captions

# (continuous form, present form) paraphrases per motion.
_MOTION_PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "left": (("moving to the left", "moves to the left"), ("moving left", "moves left"),
             ("sliding left", "slides left"), ("travelling to the left", "travels to the left"),
             ("drifting left", "drifts left")),
    "right": (("moving to the right", "moves to the right"), ("moving right", "moves right"),
              ("sliding right", "slides right"), ("travelling to the right", "travels to the right"),
              ("drifting right", "drifts right")),
    "up": (("moving up", "moves up"), ("moving upwards", "moves upwards"), ("rising", "rises"),
           ("floating up", "floats up"), ("going up", "goes up")),
    "down": (("moving down", "moves down"), ("moving downwards", "moves downwards"), ("falling", "falls"),
             ("sinking", "sinks"), ("going down", "goes down")),
    "bouncing": (("bouncing", "bounces"), ("bouncing up and down", "bounces up and down"),
                 ("hopping", "hops")),
    "growing": (("growing", "grows"), ("getting bigger", "gets bigger"), ("expanding", "expands")),
    "shrinking": (("shrinking", "shrinks"), ("getting smaller", "gets smaller"),
                  ("contracting", "contracts")),
    "rotating": (("rotating", "rotates"), ("spinning", "spins"), ("turning around", "turns around")),
}

# {subject} is "a red circle ..." with a continuous-form motion; {clause} uses the present form.
_TEMPLATES = (
    "{subject} on a {bg} background",
    "{subject} on {bg} background",
    "{subject} against a {bg} background",
    "{subject} over a {bg} backdrop",
    "{subject}, {bg} background",
    "a {bg} background with {subject}",
    "on a {bg} background, {clause}",
    "{clause} on a {bg} background",
)


def _noun(colour: str, shape: str) -> str:
    return f"a {colour} {shape}"


def _fix_articles(text: str) -> str:
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def canonical_caption(colour: str, shape: str, direction: str, background: str) -> str:
    """The plain form used by the demo's default prompt and by evaluation."""
    phrase = _MOTION_PHRASES[direction][0][0]
    return _fix_articles(f"a {colour} {shape} {phrase} on a {background} background")


def caption(spec: ClipSpec, rng: np.random.Generator) -> str:
    """A random paraphrase describing `spec`."""
    phrases = [_MOTION_PHRASES[o.motion][rng.integers(len(_MOTION_PHRASES[o.motion]))] for o in spec.objects]
    subject = " and ".join(f"{_noun(o.colour, o.shape)} {p[0]}" for o, p in zip(spec.objects, phrases))
    clause = " and ".join(f"{_noun(o.colour, o.shape)} {p[1]}" for o, p in zip(spec.objects, phrases))
    template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    return _fix_articles(template.format(subject=subject, clause=clause, bg=spec.background))


def all_caption_phrases() -> Iterator[str]:
    """Every word sequence captions can contain (tokenizer training text)."""
    for colour in COLOURS:
        for shape in SHAPES:
            for phrases in _MOTION_PHRASES.values():
                for continuous, present in phrases:
                    for template in _TEMPLATES:
                        yield _fix_articles(template.format(
                            subject=f"a {colour} {shape} {continuous}",
                            clause=f"a {colour} {shape} {present}",
                            bg=colour,
                        ))


# ----------------------------------------------------------------------------------------------
# Samples


@dataclass(frozen=True)
class Sample:
    spec: ClipSpec
    caption: str
    video: np.ndarray  # uint8 [T, H, W, 3]


def training_samples(seed: int, frames: int = FRAMES) -> Iterator[Sample]:
    """An endless, reproducible stream of training clips (held-out combinations never appear)."""
    rng = np.random.default_rng(seed)
    while True:
        spec = sample_training_spec(rng)
        yield Sample(spec, caption(spec, rng), render(spec, frames))


def to_model_range(video: np.ndarray):
    """uint8 `[T, H, W, 3]` -> float32 torch `[3, T, H, W]` in [-1, 1]."""
    import torch

    return torch.from_numpy(video).permute(3, 0, 1, 2).float().div(127.5).sub(1.0)
