"""`python -m bench.memory` in reduced form (issue 14): a random Wan file in ComfyUI's fp8-scaled layout
with 1.3B widths, loaded resident and block-streamed from its memory map in fresh processes. The
streamed peak of private memory stays within N kept blocks x 1.2 + 1 GiB, the output equals the
resident run, and the temporary file is gone afterwards, also when a case fails. The full 1.3B
model (30 blocks, 1.4 GB file) runs with KINEMA_HEAVY=1; the 14B bench itself is run by hand."""
from __future__ import annotations

import pytest

from bench.memory import GIB, measure
from conftest import HEAVY


@pytest.mark.heavy
def test_streaming_stays_within_its_budget_and_matches_the_resident_run(tmp_path):
    layers, kept = (None, (4, 20)) if HEAVY else (3, (1,))
    result = measure("1.3B", layers, kept=kept, folder=str(tmp_path), threads=2)
    resident, *streamed = result.cases
    assert [c.kept for c in streamed] == list(kept)
    for case in streamed:
        assert case.equal, case
        assert case.peak_bytes <= case.budget_bytes, case
        # the kept blocks really are private copies: the peak grows by at least their bytes
        assert case.peak_bytes - case.baseline_bytes >= case.kept_block_bytes * 0.8
    assert result.stream_budget_ratio <= 1.0
    assert resident.peak_bytes < resident.baseline_bytes + GIB  # no private copy of the weights while loading
    assert list(tmp_path.iterdir()) == []  # the file and its folder are deleted


def test_the_file_is_deleted_when_a_case_fails(tmp_path):
    with pytest.raises(RuntimeError, match="blocks_on_device must be >= 0"):
        measure("1.3B", 1, kept=(-1,), folder=str(tmp_path), threads=1)
    assert list(tmp_path.iterdir()) == []
