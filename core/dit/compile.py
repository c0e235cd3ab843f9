"""Regional compilation of the DiT: `torch.compile` on the transformer block's code, not the whole model.

Every block of a model has the same code and the same shapes, so one compiled graph serves them
all: compiling the block step once costs ~1/num_layers of compiling the whole stack, and the
compiled graph is reused by every block (and every model) of those shapes. Shapes are static
(dynamic=False): a new latent size or batch compiles once more, on its first call.
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import time
import warnings
from typing import Callable

import torch

log = logging.getLogger(__name__)


@functools.cache
def compiled(function: Callable, backend: str) -> Callable:
    """`function` compiled by `backend`, one wrapper per process: its code cache is shared by every caller."""
    return torch.compile(function, backend=backend, dynamic=False)


def check_compiler(backend: str, device: torch.device) -> None:
    """Refuse, with what to install, a compile that inductor could not build on `device`."""
    if backend != "inductor":
        return
    if device.type == "cpu":
        # Inductor writes C++ for CPU kernels and builds them with $CXX (default g++), as it searches.
        compiler = os.environ.get("CXX", "g++")
        if shutil.which(compiler) is None:
            raise RuntimeError(
                f"compiled blocks on CPU need a C++ compiler: torch.compile (inductor) builds its CPU kernels with "
                f"{compiler!r}, which is not on PATH. Install one (e.g. `apt install g++`, or set CXX to your "
                f"compiler), or run without compile")
    elif device.type == "cuda" and importlib.util.find_spec("triton") is None:
        raise RuntimeError("compiled blocks on CUDA need Triton (torch.compile's inductor writes Triton kernels): "
                           "`pip install triton` (Linux), or run without compile")


class FirstCallLog:
    """Logs, once per input shape and device, how long the first call of the compiled blocks took,
    after checking that the device can compile (the weights may live elsewhere, e.g. streamed).

    Compilation happens on that call (torch.compile is lazy), so its time is the compile time plus
    one run of the blocks, which is small beside it.
    """

    def __init__(self, backend: str, num_blocks: int):
        self.backend, self.num_blocks = backend, num_blocks
        self.seconds: dict[tuple, float] = {}  # (tokens shape, device) -> seconds of its first call

    def run(self, tokens: torch.Tensor, call: Callable[[], torch.Tensor]) -> torch.Tensor:
        key = (tuple(tokens.shape), str(tokens.device))
        if key in self.seconds:
            return call()
        check_compiler(self.backend, tokens.device)
        start = time.perf_counter()
        with warnings.catch_warnings():
            # RoPE is one complex multiply (kernels/rope.py), which inductor leaves to its eager kernel
            # inside the compiled graph; its "may be worse than eager" notice is about that one op.
            warnings.filterwarnings("ignore", message=".*does not support code generation for complex")
            out = call()
        self.seconds[key] = time.perf_counter() - start
        log.info("compiled %d blocks in %.1f s (first call at tokens %s on %s, including one run)",
                 self.num_blocks, self.seconds[key], list(key[0]), key[1])
        return out
