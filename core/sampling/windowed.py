"""The velocity of the whole latent, assembled from context windows over latent time.

Every run goes through here: a clip no longer than one window is one window spanning it (each
share is exactly 1, so nothing is blended), a long video is many. At every step each window is
denoised as its own short clip and the windows' velocities are blended where they overlap.

Why per-step blending rather than generating chunk after chunk: neighbouring windows agree on their
overlap at every noise level, so there is no seam to hide (chunk-by-chunk generation has to glue
finished clips together and only constrains the new chunk through replaced frames, which a model
not trained for continuation often ignores). The DiT only ever sees one window, so its positions
stay in the trained range and the cost of a step grows linearly with length.

A branch's reference frames (VACE reference images, Animate's photo slot) lead every window, as a
prompt does; their velocity is the windows' average. Image-conditioned models continue in latent
space: window k > 0 is conditioned on the current clean estimate of its first frame, taken from
window k - 1 in the same step (never decoded).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from ..progress import Progress
from .branch import BranchConditioning
from .conditioning import ImageConditioning, impose_known, token_timesteps
from .drift import ChannelStats, matched_velocity
from .guidance import guided_velocity
from .windows import Window

# (model, cfg scale) for one step; a window's model may be the step cache's view of it.
Expert = tuple[Callable[..., torch.Tensor], float]


@dataclass(frozen=True, eq=False)
class WindowPlan:
    """Where the windows sit and how each one is conditioned, fixed for the whole run."""

    windows: Sequence[Window]  # over the video's latent frames (after the reference prefix)
    shares: Sequence[torch.Tensor]  # per window [1, 1, L, 1, 1]: its share of each frame's velocity
    prefix: int  # reference frames in front of every window
    contexts: Sequence  # per window: the encoded positive prompt it sees
    negative: object
    models: Sequence[Callable]  # per window: raw model -> the model to call (identity, or its step cache view)
    image: Optional[ImageConditioning]
    branch: Optional[BranchConditioning]
    patch: tuple[int, int]  # spatial patch of the DiT tokens (per-token timesteps)
    prepared: "PreparedContexts"
    drift_strength: float = 0.0
    guidance: Callable[..., torch.Tensor] = guided_velocity  # core/parallel swaps in CFG-parallel guidance
    # core/parallel's window-parallel spread (`velocity(k, compute, like)`: window k's velocity on every rank,
    # computed by its owner); None = this process computes every window
    spread: Optional[object] = None


class PreparedContexts:
    """Each (model, prompt) pair's text (and CLIP image) keys and values, computed once per run and reused
    at every step and window (`WanDiT.prepare_context`); models without it get the raw context. Lives as long
    as the run, which is what invalidates it."""

    def __init__(self):
        self._made: dict[tuple[int, int], tuple] = {}

    def __call__(self, model, context, clip_fea, batch: int, device) -> tuple[object, bool]:
        """(the context to pass, whether clip_fea is bound into it)."""
        prepare = getattr(model, "prepare_context", None)
        if prepare is None:
            return context, False
        key = (id(model), id(context))
        if key not in self._made:  # the model and context are kept with it, so their ids stay theirs
            self._made[key] = (model, context, prepare(context, clip_fea, device=device, batch=batch))
        return self._made[key][2], True


def window_velocity(plan: WindowPlan, sigmas: torch.Tensor, timesteps: torch.Tensor,
                    experts: Sequence[Expert], progress: Progress) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """`velocity_at(x, i)` for `run_loop`: the guided velocity [B, C, P + T, H, W] at step i."""
    p = plan.prefix

    def velocity_at(x: torch.Tensor, i: int) -> torch.Tensor:
        model, scale = experts[i]
        sigma = float(sigmas[i])
        t = timesteps[i].to(x.device).expand(x.shape[0])  # [B]
        velocity = torch.zeros_like(x)
        references: dict[int, ChannelStats] = {}
        anchor = None  # [B, C, H, W] clean estimate of the next window's first frame
        for k, window in enumerate(plan.windows):
            if k > 0:
                progress.check()  # between windows too: a long video's step can take minutes
            cond = window_image(plan.image, window, k, anchor)
            xw = torch.cat([x[:, :, :p], x[:, :, p + window.start:p + window.end]], dim=2) if p else \
                x[:, :, window.start:window.end]  # [B, C, P + L, H, W]
            if k > 0:
                xw = impose_known(xw, cond)
            tw = t if cond is None or cond.known_mask is None else token_timesteps(t, cond.known_mask, plan.patch)
            inputs = image_inputs(cond)
            if plan.branch is not None:
                inputs.update(plan.branch.window_inputs(x.shape[0], window.start, window.end, x.device))
            call = plan.models[k](model)
            clip_fea = inputs.pop("clip_fea", None)
            unguided = plan.branch.unguided_inputs(inputs) if plan.branch is not None else inputs

            def predict(pass_):  # (text context, DiT inputs) of the guided or the unguided pass
                context, extra = pass_
                text, bound = plan.prepared(model, context, clip_fea, x.shape[0], x.device)
                extra = extra if bound or clip_fea is None else {**extra, "clip_fea": clip_fea}
                return call(xw, tw, text, **extra)

            negative = None if plan.negative is None else (plan.negative, unguided)

            def guided():
                return plan.guidance(predict, (plan.contexts[k], inputs), negative, scale)  # [B, C, P + L, H, W]

            vw = guided() if plan.spread is None else plan.spread.velocity(k, guided, like=xw)
            if plan.drift_strength:
                vw[:, :, p:] = matched_velocity(xw[:, :, p:], vw[:, :, p:], sigma, references, id(plan.contexts[k]),
                                            plan.drift_strength)
            if p:
                velocity[:, :, :p] += vw[:, :, :p] / len(plan.windows)
            velocity[:, :, p + window.start:p + window.end] += plan.shares[k] * vw[:, :, p:]
            if k + 1 < len(plan.windows):
                anchor = (xw - sigma * vw)[:, :, p + plan.windows[k + 1].start - window.start]
        return velocity

    return velocity_at


def image_inputs(cond: Optional[ImageConditioning]) -> dict:
    """The DiT keyword inputs an image conditioning brings (`y`, `clip_fea`)."""
    if cond is None:
        return {}
    return {name: value for name, value in (("y", cond.y), ("clip_fea", cond.clip_fea)) if value is not None}


def window_image(image: Optional[ImageConditioning], window: Window, k: int,
                 anchor: Optional[torch.Tensor]) -> Optional[ImageConditioning]:
    """The image conditioning seen by window k: the start image for the first, the anchor frame later."""
    if image is None:
        return None
    y, known_latent, known_mask = image.y, image.known_latent, image.known_mask
    if y is not None:
        # y of the whole clip, or of the first window only (frames 1.. of every later window are the
        # same zero-image latents, so a 2-minute I2V run never encodes 2 minutes of grey frames)
        y = y[:, :, window.start:window.end] if y.shape[2] > window.length else y  # [B, 4 + C, L, H, W]
        if k > 0:
            y = y.clone()
            y[:, :4, 0] = 1  # the 4 mask channels of the first latent frame: known
            y[:, 4:, 0] = anchor
    if known_mask is not None:
        known_mask = known_mask[:, :, window.start:window.end]  # [1 or B, 1, L, H, W]
        known_latent = known_latent[:, :, window.start:window.end]  # [B, C, L, H, W]
        if k > 0:
            known_mask, known_latent = known_mask.clone(), known_latent.clone()
            known_mask[:, :, 0] = 1
            known_latent[:, :, 0] = anchor
    return ImageConditioning(y=y, clip_fea=image.clip_fea, known_latent=known_latent, known_mask=known_mask)
