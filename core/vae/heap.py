"""Keeps a streamed decode's resident memory flat in the clip's length under glibc's malloc.

Every chunk of a streamed decode allocates and frees the same set of 1-32 MiB buffers (activations,
conv workspaces, the frames handed to the encoder). glibc serves blocks above its mmap threshold
with mmap and returns them to the OS on free, but by default it raises that threshold to the size
of each large block freed (up to 32 MiB). After the first chunk every such buffer therefore comes
from the brk heap, where the long-lived blocks allocated between them (the causal caches, the
encoder's frames) leave holes that the next chunk's buffers do not fit; the heap keeps growing and
its freed pages stay resident. Measured with bench/vae_memory.py at 192x192: the peak of a
513-frame decode varies by +-10% between runs and creeps up over the chunks, while with a fixed
threshold it is the same in every run and grows 3% (the encoder's look-ahead frames). Reusing the
causal caches in place did not help: the holes come from torch's own temporaries, which we do not
allocate. A fixed threshold is therefore set while a decode streams, from code, so users set no
environment variable.

Outside glibc (macOS, Windows, musl) this does nothing. A threshold the user chose
(MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES) is left alone.
"""
from __future__ import annotations

import ctypes
import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

# mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# Blocks from 1 MiB up (chunk-sized buffers) bypass the heap during a decode; smaller ones (Python
# and bookkeeping objects, small low-resolution activations) keep the heap's speed: a fresh mmap
# costs page faults on first touch, which made 64 KiB-1 MiB element-wise ops several times slower.
DECODE_MMAP_THRESHOLD = 1 << 20
# glibc's dynamic threshold stops rising at 32 MiB (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit), with trim
# at twice that. mallopt turns the dynamic rule off for good, so after a decode the process gets
# the values a long-running torch process has already climbed to, not the decode's low threshold.
RESTORED_MMAP_THRESHOLD = 32 << 20

_lock = threading.Lock()
_active = 0  # decodes streaming now (nested or from several threads): only the outermost sets and restores


def glibc_mallopt() -> Optional[Callable[[int, int], int]]:
    """glibc's `mallopt`, or None off glibc or when the user set the allocator's threshold themselves."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
    except (AttributeError, ValueError, OSError):  # no confstr (Windows) or not glibc (musl, macOS)
        return None
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return None
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt


def _set_threshold(mallopt: Callable[[int, int], int], threshold: int) -> None:
    mallopt(M_MMAP_THRESHOLD, threshold)
    mallopt(M_TRIM_THRESHOLD, 2 * threshold)  # the ratio glibc's dynamic rule keeps


@contextmanager
def steady_heap() -> Iterator[None]:
    """While inside, chunk-sized blocks are mmapped and go back to the OS when freed (glibc only)."""
    global _active
    mallopt = glibc_mallopt()
    if mallopt is None:
        yield
        return
    with _lock:
        if _active == 0:
            _set_threshold(mallopt, DECODE_MMAP_THRESHOLD)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                _set_threshold(mallopt, RESTORED_MMAP_THRESHOLD)
