"""TextEncoder: prompts in, per-prompt umT5 embeddings out (Wan's text conditioning)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..parallel.active import active as active_parallel_run
from ..progress import SILENT, Progress
from .config import UMT5Config
from .tokenizer import Tokenizer
from .umt5 import UMT5Encoder


class TextEncoder:
    """umT5 encoder + its tokenizer.

    `encode` runs prompts in padded batches with an attention mask and returns each prompt's rows
    for its real tokens only (the end token included), as Wan keeps them before zero-padding to 512.
    """

    def __init__(self, model: UMT5Encoder, tokenizer: Tokenizer, dtype: torch.dtype, batch_size: int = 8):
        self.model = model
        self.tokenizer = tokenizer
        self.dtype = dtype  # compute dtype; weights stay in their stored dtype and are upcast per layer
        self.batch_size = batch_size

    @property
    def config(self) -> UMT5Config:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.token_embedding.weight.device

    def encode(self, prompts: Sequence[str], progress: Optional[Progress] = None) -> list[torch.Tensor]:
        """float32 `[L_i, d_model]` per prompt, on the CPU."""
        return self.encode_ids(self.tokenizer(prompts), progress)

    @torch.inference_mode()
    def encode_ids(self, token_ids: Sequence[Sequence[int]], progress: Optional[Progress] = None) -> list[torch.Tensor]:
        """Like `encode`, from token ids that already end with the end token."""
        progress = progress or SILENT
        self._check_ids(token_ids)
        run = active_parallel_run()
        if run is not None:  # a multi-process run: rank 0 encodes, every other rank receives its rows
            from ..parallel.text import from_driver

            return from_driver(run, lambda: self._encode(token_ids, progress))
        return self._encode(token_ids, progress)

    def _encode(self, token_ids: Sequence[Sequence[int]], progress: Progress) -> list[torch.Tensor]:
        batches = [token_ids[i : i + self.batch_size] for i in range(0, len(token_ids), self.batch_size)]
        layers = self.config.num_layers
        out: list[torch.Tensor] = []
        for n, batch in enumerate(batches):
            # Padding goes at the end, so the real tokens' relative positions are those of an unpadded run.
            length = max(len(ids) for ids in batch)
            ids = torch.full((len(batch), length), self.tokenizer.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), length), dtype=torch.bool)
            for row, seq in enumerate(batch):
                ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
                mask[row, : len(seq)] = True
            hidden = self.model(ids.to(self.device), mask.to(self.device), self.dtype, progress, n * layers, len(batches) * layers)
            out.extend(hidden[row, : len(seq)].float().cpu() for row, seq in enumerate(batch))  # [L_i, D]
        return out

    def _check_ids(self, token_ids: Sequence[Sequence[int]]) -> None:
        if any(len(ids) == 0 for ids in token_ids):
            raise ValueError("every prompt needs at least one token (the end token)")
        largest = max((max(ids) for ids in token_ids), default=0)
        if largest >= self.config.vocab_size:
            raise ValueError(
                f"token id {largest} is outside the encoder's {self.config.vocab_size}-row vocabulary: the tokenizer "
                f"({self.tokenizer.source}) does not belong to this text encoder; use the umT5 spiece.model"
            )
