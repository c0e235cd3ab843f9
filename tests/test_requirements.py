"""Installable the ComfyUI way: requirements.txt (what ComfyUI-Manager installs) never touches ComfyUI's torch,
follows pyproject.toml's dependencies, and [tool.comfy] carries the Comfy Registry fields."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kinema

tomllib = pytest.importorskip("tomllib")
REPO = Path(kinema.__file__).resolve().parent
TORCH_PACKAGES = {"torch", "torchvision", "torchaudio"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower()


def _requirements() -> list[str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_requirements_hold_no_torch_line():
    assert not {_name(r) for r in _requirements()} & TORCH_PACKAGES, _requirements()
    assert not [r for r in _requirements() if r.startswith(("-", "--"))], "no index or option lines"


def test_requirements_are_the_dependencies_without_torch():
    dependencies = [d for d in _pyproject()["project"]["dependencies"] if _name(d) not in TORCH_PACKAGES]
    assert sorted(_requirements()) == sorted(dependencies)


def test_comfy_registry_fields():
    comfy = _pyproject()["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] == "Kinema" and "Icon" in comfy


def test_pip_resolving_the_requirements_keeps_the_installed_torch(tmp_path):
    """A dry run in this interpreter (which has torch, as ComfyUI's does): pip would install no torch package."""
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                           "-r", str(REPO / "requirements.txt")], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"pip could not resolve here (no package index?): {done.stderr[-500:]}")
    installs = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert not installs & TORCH_PACKAGES, installs
