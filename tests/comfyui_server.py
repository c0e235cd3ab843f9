"""A real ComfyUI for host tests: started on the CPU from the checkout in KINEMA_COMFYUI (read-only), with
everything it writes in a temporary --base-directory whose custom_nodes/ links to this repository.

ComfyUI's --cpu cannot be combined with --lowvram / --novram on its command line (one argparse group), so
ComfyUI is started through a small launcher that parses the flags given and then turns the CPU mode on:
the VRAM flags then reach comfy.cli_args.args as a user's would.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence

import pytest

import kinema

REPO = Path(kinema.__file__).resolve().parent
START_TIMEOUT = 300

LAUNCHER = """
import runpy, sys
import comfy.options
comfy.options.enable_args_parsing()
from comfy.cli_args import args  # parses sys.argv[1:] like `python main.py ...`
args.cpu = True
sys.argv[0] = "main.py"
runpy.run_path("main.py", run_name="__main__")
"""


def checkout() -> Path:
    return Path(os.environ["KINEMA_COMFYUI"])


def comfyui_python() -> str:
    return os.environ.get("KINEMA_COMFYUI_PYTHON", sys.executable)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def post_json(url: str, payload: dict):
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body.strip() else None


def link_pack(base: Path) -> None:
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / "kinema").symlink_to(REPO, target_is_directory=True)


@contextlib.contextmanager
def running_comfyui(base: Path, flags: Sequence[str] = ()) -> Iterator[dict]:
    """ComfyUI on the CPU serving `base` (its custom_nodes/, models/, input/ prepared by the caller), with
    extra command-line `flags` (e.g. --lowvram); yields {"url", "base", "log"}."""
    port = free_port()
    log_path = base / "comfyui.log"
    command = [comfyui_python(), "-c", LAUNCHER, "--listen", "127.0.0.1", "--port", str(port), "--base-directory",
               str(base), "--database-url", "sqlite:///:memory:", "--disable-api-nodes", *flags]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=checkout(), stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(checkout())})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"ComfyUI exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                get_json(url + "/system_stats")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"ComfyUI did not answer in {START_TIMEOUT} s:\n{log_path.read_text()[-4000:]}")
                time.sleep(1)
        yield {"url": url, "base": base, "log": log_path}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
