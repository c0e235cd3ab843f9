"""WanDiT: the Wan2.1 / Wan2.2 diffusion transformer (T2V, I2V with or without CLIP, FLF2V, TI2V)."""
from __future__ import annotations

import logging
import weakref
from functools import partial
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn as nn

from ...kernels.attention import get_backend
from ...kernels.rope import rope_rotation
from ..layers import Linear
from .blocks import BLOCK_MODULATION, Block, BlockInputs, Head, TimeModulation
from .compile import FirstCallLog, check_compiler
from .config import DiTConfig
from .context import PreparedContext
from .embeddings import ImageEmbedding, PatchEmbedding, timestep_sinusoid

log = logging.getLogger(__name__)

# (layer, grid=, timestep=, dense_backend=) -> (backend, options); see WanDiT.set_attention_policy.
AttentionPolicy = Callable[..., tuple[str, dict]]
Context = Union[torch.Tensor, Sequence[torch.Tensor]]

_ROPE_CACHE_SIZE = 8  # distinct (grid, device) tables kept; a run uses one or two grids


class WanDiT(nn.Module):
    """Velocity predictor `dit(x, t, context, y=..., clip_fea=...)`; `context` may be a
    `dit.prepare_context(...)` made once per run.

    Weights keep their stored dtype; every layer computes in `compute_dtype` (Linear upcasts
    per call), with the residual stream, norms and modulation in float32.
    """

    def __init__(self, config: DiTConfig, attention: str = "sdpa", compute_dtype: torch.dtype = torch.float32):
        super().__init__()
        c = config
        self.config = config
        self.patch_embedding = PatchEmbedding(c.in_dim, c.dim, c.patch_size)
        self.text_embedding = nn.Sequential(Linear(c.text_dim, c.dim), nn.GELU(approximate="tanh"), Linear(c.dim, c.dim))
        self.time_embedding = nn.Sequential(Linear(c.freq_dim, c.dim), nn.SiLU(), Linear(c.dim, c.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), Linear(c.dim, len(BLOCK_MODULATION) * c.dim))
        self.img_emb = ImageEmbedding(c.image_dim, c.dim, c.image_tokens) if c.has_image_branch else None
        self.blocks = nn.ModuleList(
            Block(c.dim, c.ffn_dim, c.num_heads, c.eps, c.has_image_branch, index=i) for i in range(c.num_layers)
        )
        self.head = Head(c.dim, c.out_dim * c.patch_size[0] * c.patch_size[1] * c.patch_size[2], c.eps)
        self.compute_dtype = compute_dtype
        self.attention_backend = "sdpa"
        self.set_attention(attention)
        self.attention_policy: Optional[AttentionPolicy] = None
        self._rope_cache: dict[tuple, torch.Tensor] = {}
        self._compile_log: Optional[FirstCallLog] = None  # set by compile_blocks
        # Sequence parallel: set on every rank by core.parallel (`plan(L, unit)` -> this call's token slice);
        # None = the whole sequence runs here.
        self.sequence_split = None

    def set_attention(self, backend: str) -> None:
        """Choose the attention backend (`sdpa`, `flash`, `sage`, `auto`, ...); unknown names raise."""
        if backend != "auto":
            get_backend(backend)
        self.attention_backend = backend

    def set_attention_policy(self, policy: Optional[AttentionPolicy]) -> None:
        """Choose the self-attention per layer and step, e.g. `kernels.sparse3d.SparseSchedule(...)`
        (dense early steps, sparse later). The policy is called as `policy(layer, grid=(F, H, W),
        timestep=max t of the call, dense_backend=...)` and returns `(backend, options)`; cross-attention
        keeps the dense backend. None = the dense backend everywhere."""
        if policy is not None and not callable(policy):
            raise TypeError(f"attention policy must be callable (e.g. a SparseSchedule) or None, got {policy!r}")
        self.attention_policy = policy

    def forward(
        self,
        x: torch.Tensor,  # [B, C, T, H, W] noisy latents
        t: Union[torch.Tensor, float],  # [B] or [B, L_tokens], 0..1000 scale
        context: Union[Context, PreparedContext],  # [B, L<=512, text_dim], list of [L_i, text_dim], or prepared
        *,
        y: Optional[torch.Tensor] = None,  # [B, C_y, T, H, W] I2V conditioning, concatenated on channels
        clip_fea: Optional[torch.Tensor] = None,  # [B, 257 (FLF2V 514), image_dim] CLIP features
        **branch_inputs,  # inputs of the VACE / Animate branches (see their `_transformer`)
    ) -> torch.Tensor:  # [B, out_dim, T, H, W] float32 velocity
        """Grad-neutral: inference callers run it under `torch.no_grad()` / `inference_mode()`
        (the samplers do), training calls it as is."""
        c, dtype = self.config, self.compute_dtype
        x = self._model_input(x, y)
        batch, _, frames, height, width = x.shape
        grid = (frames // c.patch_size[0], height // c.patch_size[1], width // c.patch_size[2])
        tokens = self.patch_embedding(x.to(dtype)).float()  # [B, L, dim] residual stream
        rope, choice = self._rope(grid, x.device), self._self_attention_choice(grid, t)
        sequence = None
        if self.sequence_split is not None:  # from here on this rank holds one contiguous slice of the tokens
            sequence = self.sequence_split.plan(tokens.shape[1], self._sequence_unit(grid))
            tokens, rope = sequence.local(tokens), sequence.local(rope, dim=0)  # [B, L_r, dim], [L_r, D/2]
            t = sequence.local_timesteps(t)
        e, e0 = self._time_embedding(t, batch, tokens.shape[1], x.device)
        if isinstance(context, PreparedContext):
            context.check(self, batch, x.device, clip_fea)
        else:
            context = self.prepare_context(context, clip_fea, device=x.device, batch=batch)
        shared = BlockInputs(e0, rope, self.attention_backend, choice, sequence)
        if self._compile_log is None:
            tokens = self._transformer(tokens, context, shared, grid, **branch_inputs)
        else:
            tokens = self._compile_log.run(tokens, lambda: self._transformer(
                tokens, context, shared, grid, **branch_inputs))
        out = self.head(tokens, e).float()  # [B, L or L_r, prod(patch) * out_dim]
        return self._unpatchify(out if sequence is None else sequence.gather(out), grid)

    def prepare_context(self, context: Context, clip_fea: Optional[torch.Tensor] = None, *,
                        device: Optional[torch.device | str] = None, batch: Optional[int] = None) -> PreparedContext:
        """The embedded text (and CLIP image) and every block's cross-attention keys and values,
        computed once; pass the result as `context` at every step of a run (see core/dit/context.py).

        context: [B, L<=512, text_dim] or a list of B [L_i, text_dim] (umT5 output), one prompt per
        sample; clip_fea: [B, 257 or 514, image_dim] for Wan2.1 I2V/FLF2V and Animate, else None;
        device: where the latents will be (default: where the weights are); batch: the expected
        number of prompts (checked), default their count.
        """
        rows = list(context) if not torch.is_tensor(context) else list(context.unbind(0))
        batch = len(rows) if batch is None else batch
        device = self.patch_embedding.weight.device if device is None else torch.device(device)
        text = self._text_context(rows, batch, device)
        image = self._image_context(None if clip_fea is None else clip_fea.to(device), batch)
        return PreparedContext(
            text, image,
            blocks=tuple(block.cross_attn.keys_values(text, image) for block in self.blocks),
            vace_blocks=tuple(block.cross_attn.keys_values(text, image) for block in self._vace_blocks()),
            clip_fea=clip_fea, owner=weakref.ref(self))

    def compile_blocks(self, backend: str = "inductor") -> "WanDiT":
        """Run every transformer block (VACE control blocks included) through `torch.compile`d code:
        one compilation per distinct input shape, reused by all blocks (see core/dit/compile.py).
        Compiles lazily; the first call of each shape logs "compiled N blocks in X s". Returns self."""
        blocks = [*self.blocks, *self._vace_blocks()]
        check_compiler(backend, self.patch_embedding.weight.device)
        for block in blocks:
            block.compile_backend = backend
        self._compile_log = FirstCallLog(backend, len(blocks))
        return self

    def _sequence_unit(self, grid: tuple[int, int, int]) -> int:
        """Tokens a sequence-parallel slice boundary must not cut (Animate: one latent frame)."""
        return 1

    def _vace_blocks(self) -> Sequence[Block]:
        """Blocks besides the main stack that attend to the text (WanVACE's control blocks)."""
        return ()

    def _transformer(self, tokens: torch.Tensor, context: PreparedContext, shared: BlockInputs,
                     grid: tuple[int, int, int], **branch_inputs) -> torch.Tensor:  # [B, L, dim] -> [B, L, dim]
        """The block stack; VACE and Animate override it to add their branches."""
        if branch_inputs:
            raise ValueError(f"this DiT ({self.config.preset}) takes no {', '.join(sorted(branch_inputs))}: those are "
                             f"inputs of Wan VACE / Animate models")
        for block, keys_values in zip(self.blocks, context.blocks):
            tokens = block(tokens, keys_values, shared)
        return tokens

    def _self_attention_choice(self, grid: tuple[int, int, int], t) -> Optional[Callable[[int], tuple[str, dict]]]:
        if self.attention_policy is None:
            return None
        # One choice per call: a per-token t (Wan2.2) is keyed on its noisiest token.
        timestep = float(torch.as_tensor(t).max())
        return partial(self.attention_policy, grid=grid, timestep=timestep, dense_backend=self.attention_backend)

    # --- inputs --------------------------------------------------------------------------------

    def _model_input(self, x: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        c = self.config
        if y is not None:
            x = torch.cat([x, y.to(x.dtype)], dim=1)
        if x.ndim != 5 or x.shape[1] != c.in_dim:
            got = "x" + ("" if y is None else " + y") + f" shape {tuple(x.shape)}"
            hint = (
                f"; this model is image-conditioned: pass y with {c.cond_dim} channels (mask + image latents)"
                if c.cond_dim > 0 and y is None
                else ""
            )
            raise ValueError(f"the DiT expects [B, {c.in_dim}, T, H, W] input channels, got {got}{hint}")
        _, _, frames, height, width = x.shape
        pt, ph, pw = c.patch_size
        if frames % pt or height % ph or width % pw:
            raise ValueError(
                f"latent T x H x W = {frames}x{height}x{width} is not a multiple of the patch size {c.patch_size}; "
                f"choose a video size whose latent height and width are even"
            )
        return x

    def _time_embedding(
        self, t: Union[torch.Tensor, float], batch: int, num_tokens: int, device: torch.device
    ) -> tuple[TimeModulation, TimeModulation]:
        t = torch.as_tensor(t, device=device)
        if t.ndim == 0 or (t.ndim == 1 and t.shape[0] == 1):
            t = t.reshape(1).expand(batch)
        if not (t.shape == (batch,) or t.shape == (batch, num_tokens)):
            raise ValueError(
                f"timestep t must be [B]={batch} or per-token [B, L]=[{batch}, {num_tokens}], got {tuple(t.shape)}"
            )
        # Per-token timesteps take only a few distinct values (0 for conditioning frames, t elsewhere):
        # run the time MLPs once per distinct value instead of once per token.
        values, index = torch.unique(t.reshape(-1), return_inverse=True)  # [U], [B*Lt]
        index = index.reshape(batch, -1)  # [B, Lt]
        sinusoid = timestep_sinusoid(values, self.config.freq_dim)  # [U, freq] fp32
        e = self.time_embedding(sinusoid)  # [U, dim] fp32 (an fp32 island, as official)
        e0 = self.time_projection(e).unflatten(1, (len(BLOCK_MODULATION), -1))  # [U, 6, dim]
        return TimeModulation(e[:, None], index), TimeModulation(e0, index)

    def _text_context(self, rows: list[torch.Tensor], batch: int, device: torch.device) -> torch.Tensor:
        c = self.config
        if len(rows) != batch:
            raise ValueError(f"got {len(rows)} text contexts for a batch of {batch}")
        # Wan zero-pads every prompt to 512 rows BEFORE the text MLP; the padded rows are attended to.
        padded = torch.zeros(batch, c.text_len, c.text_dim, device=device, dtype=self.compute_dtype)
        for i, row in enumerate(rows):  # row [L_i, text_dim]
            if row.ndim != 2 or row.shape[1] != c.text_dim:
                raise ValueError(
                    f"text context {i} has shape {tuple(row.shape)}; expected [L, {c.text_dim}] (umT5 encoder output)"
                )
            if row.shape[0] > c.text_len:
                # Wan's tokenizer cuts prompts at text_len tokens; ours cuts at 512, so only a model
                # with a shorter text_len (the demo's) gets here.
                log.warning("prompt of %d tokens cut to this model's text_len %d", row.shape[0], c.text_len)
                row = row[: c.text_len]
            padded[i, : row.shape[0]] = row
        return self.text_embedding(padded)  # [B, text_len, dim]

    def _image_context(self, clip_fea: Optional[torch.Tensor], batch: int) -> Optional[torch.Tensor]:
        c = self.config
        if self.img_emb is None:
            if clip_fea is not None:
                raise ValueError(
                    f"this DiT ({c.preset}) has no CLIP image branch (Wan2.2 I2V uses none); do not pass clip_fea"
                )
            return None
        if clip_fea is None:
            raise ValueError(f"this DiT ({c.preset}) is a Wan2.1 I2V/FLF2V model: it needs clip_fea (CLIP vision output)")
        expected_tokens = c.image_tokens or clip_fea.shape[1]
        if clip_fea.shape != (batch, expected_tokens, c.image_dim):
            raise ValueError(f"clip_fea shape {tuple(clip_fea.shape)}; expected [{batch}, {expected_tokens}, {c.image_dim}]")
        return self.img_emb(clip_fea, self.compute_dtype)  # [B, N, dim]

    def _rope(self, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
        key = (grid, str(device))
        if key not in self._rope_cache:
            if len(self._rope_cache) >= _ROPE_CACHE_SIZE:
                self._rope_cache.pop(next(iter(self._rope_cache)))
            # A normal tensor even when built under inference_mode: the same model may later run under
            # autograd (training, or evaluation between training steps), which cannot use inference tensors.
            with torch.inference_mode(False):
                self._rope_cache[key] = rope_rotation(grid, self.config.head_dim, device=device)  # [L, D/2] complex
        return self._rope_cache[key]

    # --- output --------------------------------------------------------------------------------

    def _unpatchify(self, out: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        # Per token the head emits (pt, ph, pw, C) with C fastest.
        batch = out.shape[0]
        f, h, w = grid
        pt, ph, pw = self.config.patch_size
        out = out.reshape(batch, f, h, w, pt, ph, pw, -1)
        out = out.permute(0, 7, 1, 4, 2, 5, 3, 6)  # [B, C, f, pt, h, ph, w, pw]
        return out.reshape(batch, -1, f * pt, h * ph, w * pw)
