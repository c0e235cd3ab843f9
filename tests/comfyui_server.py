"""Start a real ComfyUI (KINEMA_COMFYUI) on a free local port with a temporary --base-directory, for host tests."""
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
from typing import Iterator

START_TIMEOUT = 300


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_comfyui(base: Path) -> Iterator[str]:
    """ComfyUI serving from `base` (its custom_nodes/, models/, input/, output/); yields the server URL."""
    checkout = Path(os.environ["KINEMA_COMFYUI"])
    python = os.environ.get("KINEMA_COMFYUI_PYTHON", sys.executable)
    port, log_path = _free_port(), base / "comfyui.log"
    command = [python, str(checkout / "main.py"), "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--base-directory", str(base), "--database-url", "sqlite:///:memory:", "--disable-api-nodes"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=checkout, stdout=log, stderr=subprocess.STDOUT)
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
