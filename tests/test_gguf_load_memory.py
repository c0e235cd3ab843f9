"""Loading a GGUF DiT makes no private copy of its weights: the quantised blocks stay in the memory-mapped
file, and the process's private memory (RssAnon) grows by less than 10% of the file. The reduced form writes
one full-width Wan 14B block in Q4_K (~0.3 GB); KINEMA_HEAVY=1 writes all 40 (~8 GB)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kinema.bench.big_checkpoint import PRESETS
from tiny_gguf import write_random_wan_gguf

pytestmark = pytest.mark.heavy
BOUND = 0.10  # peak private growth / file size, as for fp8 files (bench.fp8_load_memory)

_CHILD = """
import json, sys
from kinema.bench.private_memory import PeakPrivate, private_bytes
from kinema.core.dit import load_dit
before = private_bytes()
with PeakPrivate() as sampler:
    model = load_dit(sys.argv[1])
linear = model.blocks[0].ffn[0]
print(json.dumps({"before": before, "peak": sampler.peak, "quant": linear.quant.name,
                  "weight_dtype": str(linear.weight.dtype)}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="RssAnon needs Linux's /proc")
def test_gguf_load_costs_no_private_copy(tmp_path):
    import dataclasses

    layers = 40 if os.environ.get("KINEMA_HEAVY") == "1" else 1
    config = dataclasses.replace(PRESETS["14B"], num_layers=layers)
    path = write_random_wan_gguf(tmp_path / "wan14B-Q4_K.gguf", config, "Q4_K")
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1], timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        size = path.stat().st_size
    finally:
        path.unlink()
    assert result["quant"] == "Q4_K" and result["weight_dtype"] == "torch.uint8"
    growth = result["peak"] - result["before"]
    print(f"file {size / 2**20:.0f} MiB, private growth {growth / 2**20:.1f} MiB ({growth / size:.3f} of the file)")
    assert growth < BOUND * size, result
