"""Our umT5 tokenizer against the sentencepiece library itself (the reference), from every
vocabulary source: embedded `spiece_model`, `spiece.model`, `tokenizer.json`, a folder."""
from __future__ import annotations

import pytest

from kinema.core.text import Tokenizer, TokenizerError, clean_prompt, load_text_encoder
from tiny_umt5 import save_tiny_umt5, tiny_spiece_bytes, tiny_spiece_processor, tiny_tokenizer_json

PROMPTS = [
    "A cat walks slowly on the green grass.",
    "Zebra héllo, Straße über Dämmerung — façade élégante",
    "一只可爱的小猫在草地上奔跑，电影质感。",
    "Emoji 😀🎬🌃 and a ① ﬁ Ｆｕｌｌ width mix",
]


def expected_ids(prompt: str) -> list[int]:
    return tiny_spiece_processor().encode(prompt) + [1]  # umT5: </s> = 1 appended, no BOS


@pytest.fixture
def spiece_file(tmp_path):
    path = tmp_path / "spiece.model"
    path.write_bytes(tiny_spiece_bytes())
    return path


def sources(tmp_path, spiece_file):
    json_folder = tmp_path / "json_only"
    json_folder.mkdir()
    return {
        "embedded": load_text_encoder(save_tiny_umt5(tmp_path / "comfy", "comfy")).tokenizer,
        "spiece.model": Tokenizer.from_path(spiece_file),
        "tokenizer.json": Tokenizer.from_path(tiny_tokenizer_json(tmp_path / "tokenizer.json")),
        "folder with tokenizer.json only": Tokenizer.from_path(tiny_tokenizer_json(json_folder / "tokenizer.json").parent),
    }


def test_every_source_gives_sentencepiece_ids_plus_end_token(tmp_path, spiece_file):
    for name, tokenizer in sources(tmp_path, spiece_file).items():
        assert tokenizer(PROMPTS) == [expected_ids(p) for p in PROMPTS], name
        assert (tokenizer.end_id, tokenizer.pad_id) == (1, 0), name


def test_non_ascii_uses_byte_fallback_not_unknown(spiece_file):
    # The vocabulary never saw these characters: sentencepiece spells them as UTF-8 byte pieces.
    ids = Tokenizer.from_path(spiece_file)(["🦙 ж"])[0]
    assert 2 not in ids  # umT5's <unk>
    assert ids == expected_ids("🦙 ж")


def test_truncates_to_512_ids_including_end_token(spiece_file):
    prompt = "The quick brown fox jumps over the lazy dog. " * 80
    full = tiny_spiece_processor().encode(prompt)
    assert len(full) > 600
    (ids,) = Tokenizer.from_path(spiece_file)([prompt])
    assert ids == full[:511] + [1]


def test_prompt_cleaning_like_wan():
    assert clean_prompt("  a&amp;amp;b \n\t c   d  ") == "a&b c d"  # html-unescaped twice, whitespace collapsed
    assert clean_prompt("&lt;tag&gt;\u3000x") == "<tag> x"  # unicode whitespace too


def test_tokenizer_cleans_before_splitting(spiece_file):
    tokenizer = Tokenizer.from_path(spiece_file)
    assert tokenizer(["  A   cat&amp;dog\n walks  "]) == [expected_ids("A cat&dog walks")]
    assert tokenizer("one prompt") == [expected_ids("one prompt")]  # a bare string is one prompt, not characters


def test_bad_vocabulary_files_name_the_file_and_the_fix(tmp_path):
    garbage = tmp_path / "spiece.model"
    garbage.write_bytes(b"definitely not a sentencepiece model")
    with pytest.raises(TokenizerError, match=r"spiece\.model.*not a sentencepiece model.*google/umt5-xxl"):
        Tokenizer.from_path(garbage)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TokenizerError, match=r"empty: folder has no spiece\.model or tokenizer\.json.*Wan-AI"):
        Tokenizer.from_path(empty)
    with pytest.raises(TokenizerError, match=r"tokenizer not found: .*nowhere\.model"):
        Tokenizer.from_path(tmp_path / "nowhere.model")


def test_vocabulary_without_umt5_special_tokens_is_refused(tmp_path):
    import io

    import sentencepiece

    writer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(["some words for a vocabulary that is not umT5"] * 20), model_writer=writer,
        vocab_size=40, hard_vocab_limit=False, pad_id=-1, eos_id=-1, bos_id=-1, unk_id=0, minloglevel=2,
    )
    with pytest.raises(TokenizerError, match=r"no </s> token; it is not the umT5 tokenizer"):
        Tokenizer.from_spiece_bytes(writer.getvalue(), "other.model")
