"""Shared pytest set-up. Tests import the package as `kinema` (installed editable by scripts/bootstrap)."""
from __future__ import annotations

import os
import sys

# The repository root is the package itself, so `python -m pytest` run there puts its folders
# (kernels/, core/, bench/, ...) first on sys.path as top-level names. transformers >= 5.25 imports
# the hub package `kernels`, which our kernels/ would shadow: the root goes last, where it still
# serves `import bench` and loses to installed packages of the same name.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_AT_ROOT = [p for p in sys.path if os.path.abspath(p or os.curdir) == _ROOT]
sys.path[:] = [p for p in sys.path if p not in _AT_ROOT] + _AT_ROOT

import pytest  # noqa: E402
import torch  # noqa: E402

# Two cores on CI: more threads than cores only adds contention.
torch.set_num_threads(min(2, os.cpu_count() or 1))

HEAVY = os.environ.get("KINEMA_HEAVY") == "1"


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0


def pytest_collection_modifyitems(config, items):
    has_cuda = torch.cuda.is_available()
    comfy = os.environ.get("KINEMA_COMFYUI")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        if "host" in item.keywords and not comfy:
            item.add_marker(pytest.mark.skip(reason="set KINEMA_COMFYUI to a ComfyUI checkout to run host tests"))
