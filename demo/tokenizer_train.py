"""Train the demo's SentencePiece tokenizer on the caption vocabulary (deterministic).

Special ids follow umT5 (pad 0, eos 1, unk 2, no bos) so the model goes through the same
tokenizer code as the real umT5-XXL. Byte fallback spells unknown words as bytes instead of
collapsing them to one unknown id; text is case-folded (NFKC + lower case).
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import sentencepiece as spm

from .dataset import all_caption_phrases

VOCAB_SIZE = 512  # 256 byte pieces + 3 specials + enough BPE merges to make every caption word one piece


def train_tokenizer(vocab_size: int = VOCAB_SIZE) -> bytes:
    """The serialized SentencePiece model proto; identical bytes on every run."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sorted(set(all_caption_phrases()))),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        byte_fallback=True,
        normalization_rule_name="nmt_nfkc_cf",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        # One thread and no sampling make the result independent of the machine.
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    return model.getvalue()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the .model file")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(train_tokenizer())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
