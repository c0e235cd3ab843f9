"""Loading a scaled-fp8 DiT with a 16-bit weight dtype keeps the weights fp8 and memory-mapped: the
process's private memory (RssAnon) grows by less than 10% of the file. The reduced form writes one
full-width Wan 14B block (~0.6 GB); KINEMA_HEAVY=1 writes the whole 14B file (~14 GB)."""
from __future__ import annotations

import os

import pytest

from kinema.bench.big_checkpoint import temporary_wan_checkpoint
from kinema.bench.fp8_load_memory import BOUND, measure

pytestmark = pytest.mark.heavy


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="RssAnon needs Linux's /proc")
def test_fp8_file_loaded_as_bf16_costs_no_private_copy(tmp_path):
    layers = None if os.environ.get("KINEMA_HEAVY") == "1" else 1
    with temporary_wan_checkpoint("14B", "comfy_fp8_scaled", folder=str(tmp_path), num_layers=layers) as path:
        result = measure(path, "bf16")
    assert result["weight_dtype"] == "torch.float8_e4m3fn" and result["compute_dtype"] == "torch.bfloat16"
    assert result["peak"] - result["before"] < BOUND * result["file"], result
