"""Which CPU instructions libx264 may use, chosen so that the same frames always encode to the same file.

libx264 (core 165, as bundled with PyAV) is not repeatable on CPUs with AVX-512: encoding the same
frames twice, even with one thread, now and then gives different bits and different decoded pixels
(seen with macroblock-tree rate control and B-frames, i.e. the default settings; the more the heap has
been used before, the more often). Capped at the AVX2 instruction set the output is identical every
time, as small, as sharp and no slower (measured in tests/test_video_writer.py and the commit that
added this). On CPUs without AVX-512 the cap is exactly what libx264 picks by itself.
"""
from __future__ import annotations

import platform

# x264's own names for a CPU feature set: "AVX2" includes everything below it (SSE..AVX, FMA3, BMI1/2,
# LZCNT); "Cache64" is the 64-byte cache line every AVX2 CPU has.
AVX2_CAP = "AVX2,Cache64"


def x264_params() -> dict:
    """Extra libx264 options (for `stream.options`) that keep its output repeatable on this CPU."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not _has_avx2():
        return {}  # ARM, old x86: libx264 has no AVX-512 code to avoid; naming x86 sets there would break it
    return {"x264-params": f"asm={AVX2_CAP}"}


def _has_avx2() -> bool:
    import torch

    probe = getattr(torch.cpu, "_is_avx2_supported", None)  # the hardware, whatever ATEN_CPU_CAPABILITY says
    if probe is not None:
        return bool(probe())
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
