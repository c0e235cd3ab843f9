"""Build the whole demo model, or continue building it: text encoder, VAE, decoder fine-tune, latent
upsampler, DiT.

    nice -n 10 python -m kinema.demo.train_all

Every stage resumes from its latest checkpoint in demo_model/runs/ and skips itself when done,
so the same command starts a fresh build and continues an interrupted one. Extra arguments go
to the DiT trainer (e.g. `--steps 40000` to train longer).
"""
from __future__ import annotations

import sys

from . import finetune_decoder, text_encoder, train_dit, train_upsampler, train_vae
from .files import TEXT_FILE


def main(argv=None) -> None:
    dit_args = list(sys.argv[1:] if argv is None else argv)
    if not TEXT_FILE.is_file():
        text_encoder.main([])
    train_vae.main(["--resume"])
    finetune_decoder.main(["--resume"])
    train_upsampler.main([])  # always resumes; it encodes with the VAE encoder, which the fine-tune leaves alone
    train_dit.main(["--resume", *dit_args])


if __name__ == "__main__":
    main()
