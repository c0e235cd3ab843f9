"""core.vae.heap: a streamed decode fixes glibc's mmap threshold while it runs and restores it after;
off glibc, or when the user set the threshold, it touches nothing."""
from __future__ import annotations

import ctypes
import os

import pytest
import torch

from kinema.core.vae import heap, load_vae
from kinema.tests.tiny_vae import TINY_FRAME, save_tiny_vae

DURING = [(heap.M_MMAP_THRESHOLD, 1 << 20), (heap.M_TRIM_THRESHOLD, 2 << 20)]
AFTER = [(heap.M_MMAP_THRESHOLD, 32 << 20), (heap.M_TRIM_THRESHOLD, 64 << 20)]


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    return load_vae(save_tiny_vae(tmp_path_factory.mktemp("vae"), "2.1", "comfy"))


@pytest.fixture
def calls(monkeypatch):
    """Records mallopt calls instead of changing this process's allocator."""
    log = []
    monkeypatch.setattr(heap, "glibc_mallopt", lambda: lambda param, value: log.append((param, value)) or 1)
    return log


def _latents(frames: int) -> torch.Tensor:
    h, w = (n // 8 for n in TINY_FRAME["2.1"])
    return torch.randn(1, 16, frames, h, w, generator=torch.Generator().manual_seed(0))


def _no_libc(*args, **kwargs):
    raise AssertionError("the C library must not be opened off glibc")


@pytest.mark.parametrize("platform", ["musl or macOS", "Windows"])
def test_no_op_off_glibc(monkeypatch, platform):
    if platform == "Windows":
        monkeypatch.delattr(os, "confstr")
    else:
        def not_glibc(name):
            raise ValueError(f"unrecognized configuration name {name!r}")
        monkeypatch.setattr(os, "confstr", not_glibc)
    monkeypatch.setattr(ctypes, "CDLL", _no_libc)
    assert heap.glibc_mallopt() is None
    with heap.steady_heap():
        pass


@pytest.mark.parametrize("variable, value", [("MALLOC_MMAP_THRESHOLD_", "65536"),
                                             ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")])
def test_a_threshold_the_user_set_is_left_alone(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(ctypes, "CDLL", _no_libc)
    assert heap.glibc_mallopt() is None


def test_decode_fixes_the_threshold_while_it_streams_and_restores_it(vae, calls):
    chunks = vae.iter_decode(_latents(3), tiling=None)
    next(chunks)
    assert calls == DURING
    assert sum(1 for _ in chunks) == 2
    assert calls == DURING + AFTER


def test_restored_when_the_consumer_stops_early(vae, calls):
    chunks = vae.iter_decode(_latents(3), tiling=None)
    next(chunks)
    chunks.close()
    assert calls == DURING + AFTER


def test_overlapping_decodes_set_and_restore_once(vae, calls):
    first, second = vae.iter_decode(_latents(2), tiling=None), vae.iter_decode(_latents(2), tiling=None)
    next(first)
    next(second)
    list(first)
    assert calls == DURING  # the second decode still streams
    list(second)
    assert calls == DURING + AFTER


@pytest.mark.skipif(heap.glibc_mallopt() is None, reason="glibc only, with no threshold set by the environment")
def test_glibc_mmaps_chunk_sized_blocks_only_while_decoding():
    """The real mallopt: a 4 MiB block bypasses the heap inside, and comes from the heap again after."""

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc older than 2.33 has no mallinfo2")
    libc.mallinfo2.restype = MallInfo2

    def mmapped_bytes_of_a_new_block(nbytes: int) -> int:
        before = libc.mallinfo2().hblkhd
        block = torch.empty(nbytes // 4)  # float32; pages are never touched
        grown = libc.mallinfo2().hblkhd - before
        del block
        return grown

    with heap.steady_heap():
        # Larger than every free chunk the heap holds (earlier tests leave some), so the block can
        # only come from mmap or from growing the heap, and the fixed threshold says mmap.
        nbytes = max(4 << 20, libc.mallinfo2().fordblks + (4 << 20))
        assert mmapped_bytes_of_a_new_block(nbytes) >= nbytes
    assert mmapped_bytes_of_a_new_block(4 << 20) == 0
