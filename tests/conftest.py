"""Shared pytest set-up. Tests import the package as `kinema` (installed editable by scripts/bootstrap)."""
from __future__ import annotations

import os

import pytest
import torch

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
