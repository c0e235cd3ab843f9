"""Start a real ComfyUI (KINEMA_COMFYUI) on a free local port with a temporary --base-directory, for host tests.

ComfyUI's --cpu cannot be combined with --lowvram / --novram on its command line (one argparse group), so
with such `flags` ComfyUI starts through a small launcher that parses them and then turns the CPU mode on:
the VRAM flags reach comfy.cli_args.args as a user's would.
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

START_TIMEOUT = 300
REPO = Path(__file__).resolve().parent.parent  # the pack (the repository root)
LAUNCHER = """
import runpy, sys
import comfy.options
comfy.options.enable_args_parsing()
from comfy.cli_args import args  # parses sys.argv[1:] like `python main.py ...`
args.cpu = True
sys.argv[0] = "main.py"
runpy.run_path("main.py", run_name="__main__")
"""


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
    """`base`/custom_nodes/kinema -> this repository (nothing copied)."""
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / "kinema").symlink_to(REPO, target_is_directory=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_comfyui(base: Path, flags: Sequence[str] = ()) -> Iterator[str]:
    """ComfyUI on the CPU serving from `base` (its custom_nodes/, models/, input/, output/; its log goes to
    base/comfyui.log), with extra command-line `flags` (e.g. --lowvram, --cache-lru 20); yields the URL."""
    checkout = Path(os.environ["KINEMA_COMFYUI"])
    python = os.environ.get("KINEMA_COMFYUI_PYTHON", sys.executable)
    port, log_path = _free_port(), base / "comfyui.log"
    start = [python, "-c", LAUNCHER] if flags else [python, str(checkout / "main.py"), "--cpu"]
    command = [*start, "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
               "--database-url", "sqlite:///:memory:", "--disable-api-nodes", *flags]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=checkout, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(checkout)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                get_json(url + "/system_stats")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ComfyUI did not answer in {START_TIMEOUT} s:\n{log_path.read_text()[-4000:]}")
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
