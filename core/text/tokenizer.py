"""umT5 tokenizer with Wan's behaviour: clean the prompt, split it into sentencepiece ids,
append `</s>`, no BOS, at most 512 ids (the end token included), padding id 0.

Sources of the vocabulary, all giving the same ids:
- a `spiece_model` uint8 tensor embedded in a ComfyUI text-encoder file;
- `spiece.model`, shipped in the `google/umt5-xxl/` folder of every Wan-AI repo;
- `tokenizer.json` (HF fast tokenizer), read with the `tokenizers` package. `spiece.model` wins
  when both are there, since the sentencepiece library is the reference implementation.
"""
from __future__ import annotations

import html
import importlib.util
import os
import re
from pathlib import Path
from typing import Callable, Sequence

MAX_LENGTH = 512  # Wan's text_len: token rows the DiT's cross-attention sees
END_TOKEN = "</s>"
PAD_TOKEN = "<pad>"

_WHITESPACE = re.compile(r"\s+")

TOKENIZER_HELP = (
    "get spiece.model from the google/umt5-xxl folder of any Wan-AI repo (e.g. Wan-AI/Wan2.1-T2V-1.3B/"
    "google/umt5-xxl/spiece.model) and pass it as the tokenizer, or put it next to the text-encoder file"
)


class TokenizerError(ValueError):
    """No usable umT5 vocabulary."""


def clean_prompt(text: str) -> str:
    """Wan's "whitespace" cleaning: ftfy fix (when installed, as diffusers does), HTML-unescape twice,
    collapse whitespace runs to one space, strip."""
    if importlib.util.find_spec("ftfy") is not None:
        import ftfy  # optional: repairs mojibake and normalises quotes, as official Wan does

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE.sub(" ", text).strip()


class Tokenizer:
    """Prompts -> lists of umT5 token ids ending with `</s>`."""

    def __init__(self, split: Callable[[str], list[int]], end_id: int, pad_id: int, source: str):
        self._split = split  # text -> piece ids, without special tokens
        self.end_id = end_id
        self.pad_id = pad_id
        self.source = source

    def __call__(self, prompts: Sequence[str]) -> list[list[int]]:
        if isinstance(prompts, str):
            prompts = [prompts]
        return [self._split(clean_prompt(p))[: MAX_LENGTH - 1] + [self.end_id] for p in prompts]

    def __repr__(self) -> str:
        return f"Tokenizer(source={self.source!r})"

    @classmethod
    def from_spiece_bytes(cls, data: bytes, source: str) -> "Tokenizer":
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(data)
        except (RuntimeError, OSError) as err:
            raise TokenizerError(f"{source}: not a sentencepiece model ({err}); {TOKENIZER_HELP}") from err
        ids = {token: processor.piece_to_id(token) for token in (END_TOKEN, PAD_TOKEN)}
        for token, i in ids.items():
            if processor.id_to_piece(i) != token:
                raise TokenizerError(f"{source}: vocabulary has no {token} token; it is not the umT5 tokenizer. {TOKENIZER_HELP}")
        return cls(lambda text: processor.encode(text), ids[END_TOKEN], ids[PAD_TOKEN], source)

    @classmethod
    def from_tokenizer_json(cls, path: str | os.PathLike) -> "Tokenizer":
        if importlib.util.find_spec("tokenizers") is None:
            raise TokenizerError(f"{path}: reading tokenizer.json needs the `tokenizers` package (pip install tokenizers), "
                                 f"or use spiece.model instead")
        from tokenizers import Tokenizer as FastTokenizer

        try:
            fast = FastTokenizer.from_file(str(path))
        except Exception as err:  # the Rust library raises a bare Exception for every parse error
            raise TokenizerError(f"{path}: not a readable tokenizer.json ({err}); {TOKENIZER_HELP}") from err
        ids = {token: fast.token_to_id(token) for token in (END_TOKEN, PAD_TOKEN)}
        missing = [token for token, i in ids.items() if i is None]
        if missing:
            raise TokenizerError(f"{path}: vocabulary has no {missing} token; it is not the umT5 tokenizer. {TOKENIZER_HELP}")
        return cls(lambda text: fast.encode(text, add_special_tokens=False).ids, ids[END_TOKEN], ids[PAD_TOKEN], str(path))

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> "Tokenizer":
        """From `spiece.model`, `tokenizer.json`, or a folder holding one of them."""
        p = Path(path)
        if p.is_dir():
            found = find_tokenizer_file(p)
            if found is None:
                raise TokenizerError(f"{p}: folder has no spiece.model or tokenizer.json; {TOKENIZER_HELP}")
            p = found
        if not p.is_file():
            raise TokenizerError(f"tokenizer not found: {p}; {TOKENIZER_HELP}")
        if p.name.endswith(".json"):
            return cls.from_tokenizer_json(p)
        return cls.from_spiece_bytes(p.read_bytes(), str(p))


def find_tokenizer_file(folder: Path) -> Path | None:
    for name in ("spiece.model", "tokenizer.json"):
        if (folder / name).is_file():
            return folder / name
    return None
