"""A growing pool of training clips already encoded by the demo VAE, saved in shards.

Encoding is the costly part of a DiT training step on a CPU, so each clip is encoded once and
reused; the pool keeps growing while the DiT trains, so later steps see ever more clips. Clip i
is always the same clip (its spec comes from a generator seeded with (seed, i)), so a resumed
run rebuilds exactly the shards it lost.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.vae.model import WanVAE
from . import dataset

SHARD = 512  # clips per shard file


class LatentPool:
    def __init__(self, folder: Path, vae: WanVAE, encoder_sha256: str, seed: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.vae, self.seed = vae, seed
        # Latents of another encoder would silently train the DiT on the wrong latent space (a
        # fine-tuned decoder is fine: latents do not depend on it).
        tag = self.folder / "encoder_sha256.txt"
        if not tag.exists():
            tag.write_text(encoder_sha256)
        elif tag.read_text() != encoder_sha256:
            raise RuntimeError(f"{self.folder} holds latents of another VAE encoder; delete that folder to rebuild it")
        self.specs: list[dataset.ClipSpec] = []
        self.latents: list[torch.Tensor] = []  # float16 [z, T, h, w] each
        for path in sorted(self.folder.glob("shard_*.pt")):
            shard = torch.load(path, weights_only=False)
            self.specs.extend(shard["specs"])
            self.latents.extend(shard["latents"].unbind(0))

    def __len__(self) -> int:
        return len(self.specs)

    def spec(self, index: int) -> dataset.ClipSpec:
        return dataset.sample_training_spec(np.random.default_rng([self.seed, index]))

    def grow(self, count: int) -> None:
        """Encode `count` more clips; completed shards are written to disk."""
        specs = [self.spec(len(self) + i) for i in range(count)]
        video = torch.stack([dataset.to_model_range(dataset.render(s)) for s in specs])  # [N, 3, T, H, W]
        latents = self.vae.encode(video).to(torch.float16)  # [N, z, t, h, w]
        self.specs.extend(specs)
        self.latents.extend(latents.unbind(0))
        done = len(self) // SHARD
        for n in range(done):
            path = self.folder / f"shard_{n:05d}.pt"
            if not path.exists():
                part = slice(n * SHARD, (n + 1) * SHARD)
                tmp = path.with_suffix(".tmp")
                torch.save({"specs": self.specs[part], "latents": torch.stack(self.latents[part])}, tmp)
                tmp.replace(path)

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, list[dataset.ClipSpec]]:
        """float32 latents [B, z, t, h, w] and the specs of the clips at `indices`."""
        return torch.stack([self.latents[i] for i in indices]).float(), [self.specs[i] for i in indices]
