"""The demo model's data side: procedural clips, captions, held-out split, tokenizer, pixel scoring."""
from __future__ import annotations

import numpy as np
import pytest
import sentencepiece as spm

from kinema.demo import dataset, scoring
from kinema.demo.tokenizer_train import train_tokenizer


def test_held_out_split_is_a_combination_split():
    assert len(dataset.HELD_OUT) == 16
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(3000):
        spec = dataset.sample_training_spec(rng)
        assert not dataset.is_held_out(spec)
        seen.update((o.colour, spec.background, o.motion) for o in spec.objects)
    for colour, background, direction in dataset.HELD_OUT:
        # Each part of a held-out combination is seen in training, only the combination is new.
        assert any((colour, background, d) in seen for d in dataset.DIRECTIONS if d != direction)
        assert any((colour, b, direction) in seen for b in dataset.COLOURS if b not in (colour, background))
    assert ("red", "blue", "right") not in dataset.HELD_OUT  # the demo's default prompt is a trained case


def test_clips_are_reproducible_and_well_formed():
    first = next(dataset.training_samples(seed=3))
    again = next(dataset.training_samples(seed=3))
    assert first.caption == again.caption and np.array_equal(first.video, again.video)
    assert first.video.shape == (dataset.FRAMES, dataset.SIZE, dataset.SIZE, 3) and first.video.dtype == np.uint8


@pytest.mark.parametrize("combination", sorted(dataset.HELD_OUT))
def test_scoring_reads_ground_truth_clips(combination):
    colour, background, direction = combination
    rng = np.random.default_rng(hash(combination) % 2**32)
    for _ in range(3):
        reading = scoring.read_video(dataset.render(dataset.held_out_spec(rng, colour, background, direction)))
        assert (reading.object_colour, reading.background, reading.direction) == combination


def test_scoring_tells_still_and_empty_clips():
    spec = dataset.ClipSpec("green", (dataset.ObjectSpec("square", "yellow", "growing", 32, 32, 6, 1.8, 0.0),))
    reading = scoring.read_video(dataset.render(spec))
    assert (reading.object_colour, reading.background, reading.direction) == ("yellow", "green", "still")
    empty = scoring.read_video(dataset.render(dataset.ClipSpec("purple", ())))
    assert (empty.object_colour, empty.background, empty.direction) == (None, "purple", "none")


def test_captions_describe_the_clip():
    rng = np.random.default_rng(5)
    for _ in range(200):
        spec = dataset.sample_spec(rng)
        text = dataset.caption(spec, rng)
        assert spec.background in text and all(o.colour in text and o.shape in text for o in spec.objects)
        assert " a orange" not in text and not text.startswith("a orange")
    assert dataset.canonical_caption("red", "circle", "right", "blue") == (
        "a red circle moving to the right on a blue background")


def test_tokenizer_is_deterministic_with_umt5_specials_and_whole_words():
    model = train_tokenizer()
    assert model == train_tokenizer()
    sp = spm.SentencePieceProcessor(model_proto=model)
    assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (0, 1, 2, -1)
    assert (sp.id_to_piece(0), sp.id_to_piece(1)) == ("<pad>", "</s>")
    words = {w for text in dataset.all_caption_phrases() for w in text.replace(",", " ").split()}
    assert all(len(sp.encode(w)) == 1 for w in words)
    # Case-folded, and unknown words are spelled out in bytes rather than lost.
    assert sp.encode("A RED Circle") == sp.encode("a red circle")
    assert 2 not in sp.encode("a zebra")
