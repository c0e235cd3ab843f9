"""`kinema submit`: sends an API-format workflow to a running ComfyUI and downloads what it made.

POST /prompt with a client_id, follow /ws (progress, errors, the end of the prompt), read
/history/<prompt_id>, fetch every output file through /view. Without a WebSocket it polls
/history instead.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Optional
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode, urlsplit
from urllib.request import Request, urlopen

from .graph import apply_sets, load_graph
from .websocket import HandshakeError, WebSocket

DEFAULT_SERVER = "http://127.0.0.1:8188"
FILE_KEYS = ("images", "gifs", "videos", "video", "audio")  # where nodes list their files in /history
POLL_SECONDS = 0.5


class SubmitError(RuntimeError):
    """ComfyUI could not be reached, rejected the workflow, or failed running it."""


class ComfyClient:
    def __init__(self, server: str, timeout: float = 30.0):
        self.server = server.rstrip("/")
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    def _request(self, method: str, path: str, body: Optional[dict] = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        request = Request(self.server + path, data=data, method=method,
                          headers={"Content-Type": "application/json"} if data else {})
        try:
            with urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except HTTPError as error:
            raise _rejection(method, path, error) from None
        except (URLError, ConnectionError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise SubmitError(f"cannot reach ComfyUI at {self.server} ({reason}); start it (python main.py "
                              "--listen 127.0.0.1 --port 8188) or pass --server URL") from None

    def get_json(self, path: str) -> dict:
        return json.loads(self._request("GET", path))

    def queue(self, graph: dict) -> str:
        answer = json.loads(self._request("POST", "/prompt", {"prompt": graph, "client_id": self.client_id}))
        return answer["prompt_id"]

    def websocket(self) -> Optional[WebSocket]:
        """The /ws connection for our client_id, or None when the server offers none (we poll then)."""
        parts = urlsplit(self.server)
        scheme = "wss" if parts.scheme == "https" else "ws"
        try:
            return WebSocket(f"{scheme}://{parts.netloc}{parts.path}/ws?clientId={self.client_id}", self.timeout)
        except HandshakeError:
            return None
        except OSError as error:
            raise SubmitError(f"cannot reach ComfyUI at {self.server} ({error}); start it (python main.py "
                              "--listen 127.0.0.1 --port 8188) or pass --server URL") from None

    def download(self, item: dict, directory: Path) -> Path:
        query = urlencode({k: item.get(k, "") for k in ("filename", "subfolder", "type")})
        data = self._request("GET", f"/view?{query}")
        # Names come from the server: keep them inside the download folder.
        subfolder = [part for part in Path(item.get("subfolder", "")).parts if part not in ("..", "/", "\\")]
        return _write_new(directory.joinpath(*subfolder), Path(item["filename"]).name, data)


def _rejection(method: str, path: str, error: HTTPError) -> SubmitError:
    """ComfyUI's validation answer (HTTP 400 with error + node_errors) in readable lines."""
    try:
        body = json.loads(error.read() or b"{}")
    except json.JSONDecodeError:
        body = {}
    lines = [f"ComfyUI rejected {method} {path} (HTTP {error.code})"]
    if isinstance(body.get("error"), dict):
        problem = body["error"]
        lines.append(f"{problem.get('message', '')} {problem.get('details', '')}".strip())
    for node_id, node in (body.get("node_errors") or {}).items():
        for problem in node.get("errors", []):
            lines.append(f"  node {node_id} ({node.get('class_type')}): {problem.get('message')}: "
                         f"{problem.get('details')}")
    if "KINEMA" in " ".join(lines).upper() or "does not exist" in " ".join(lines):
        lines.append("  (are the Kinema nodes installed in this ComfyUI's custom_nodes, with their models?)")
    return SubmitError("\n".join(lines))


def _write_new(directory: Path, filename: str, data: bytes) -> Path:
    """Writes to `directory/filename`, or `name (2).ext`... if that exists: never overwrites."""
    directory.mkdir(parents=True, exist_ok=True)
    stem, suffix = Path(filename).stem, Path(filename).suffix
    target, n = directory / filename, 1
    while target.exists():
        n += 1
        target = directory / f"{stem} ({n}){suffix}"
    temporary = target.with_name(target.name + ".part")
    temporary.write_bytes(data)
    temporary.rename(target)
    return target


def wait_with_websocket(socket: WebSocket, prompt_id: str, report: Callable[[str], None],
                        deadline: Optional[float]) -> None:
    """Follows /ws until our prompt finished; raises SubmitError if it failed."""
    while True:
        if deadline is not None:
            socket.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            message = socket.receive()
        except TimeoutError:
            raise SubmitError(f"prompt {prompt_id} did not finish in time; it may still be running") from None
        if message is None:
            raise SubmitError("ComfyUI closed the WebSocket before the prompt finished")
        opcode, payload = message
        if opcode != 0x1:  # binary frames are previews
            continue
        event = json.loads(payload)
        kind, data = event.get("type"), event.get("data") or {}
        if data.get("prompt_id") not in (None, prompt_id):
            continue
        if kind == "progress":
            report(f"node {data.get('node')}: {data.get('value')}/{data.get('max')}")
        elif kind == "executing" and data.get("node") is not None:
            report(f"node {data['node']} running")
        elif kind == "execution_error":
            raise SubmitError(f"ComfyUI failed in node {data.get('node_id')} ({data.get('node_type')}): "
                              f"{data.get('exception_type')}: {data.get('exception_message')}")
        elif kind == "execution_interrupted":
            raise SubmitError(f"prompt {prompt_id} was interrupted")
        elif kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
            return  # sent after the history entry is written (execution_success comes before it)


def wait_with_polling(client: ComfyClient, prompt_id: str, deadline: Optional[float]) -> None:
    while True:
        entry = client.get_json(f"/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed", entry.get("outputs") is not None):
            return
        if entry and entry.get("status", {}).get("status_str") == "error":
            return
        if deadline is not None and time.monotonic() > deadline:
            raise SubmitError(f"prompt {prompt_id} did not finish in time; it may still be running")
        time.sleep(POLL_SECONDS)


def output_items(history_entry: dict) -> list[dict]:
    """Every file entry ({filename, subfolder, type}) the output nodes reported."""
    items = []
    for node_output in history_entry.get("outputs", {}).values():
        for key in FILE_KEYS:
            items += [item for item in node_output.get(key, []) if isinstance(item, dict) and "filename" in item]
    return items


def submit(graph: dict, server: str, output: Path, timeout: Optional[float] = None,
           report: Callable[[str], None] = lambda line: None) -> list[Path]:
    """Runs the graph on a ComfyUI server; returns the downloaded output files."""
    client = ComfyClient(server)
    socket = client.websocket()  # before queueing, so that no message is missed
    deadline = time.monotonic() + timeout if timeout else None
    try:
        prompt_id = client.queue(graph)
        report(f"queued prompt {prompt_id} on {client.server}")
        if socket is not None:
            wait_with_websocket(socket, prompt_id, report, deadline)
        wait_with_polling(client, prompt_id, deadline)  # the history entry is the record of what was made
    finally:
        if socket is not None:
            socket.close()
    entry = client.get_json(f"/history/{prompt_id}").get(prompt_id, {})
    status = entry.get("status", {})
    if status.get("status_str") == "error":
        errors = [m[1] for m in status.get("messages", []) if m and m[0] == "execution_error"]
        detail = "; ".join(f"node {e.get('node_id')} ({e.get('node_type')}): {e.get('exception_message')}"
                           for e in errors) or "see the ComfyUI log"
        raise SubmitError(f"prompt {prompt_id} failed: {detail}")
    items = output_items(entry)
    if not items:
        raise SubmitError(f"prompt {prompt_id} finished but reported no output files")
    return [client.download(item, output) for item in items]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "submit", help="run an API-format workflow on a running ComfyUI and download its outputs",
        description="Queues an API-format workflow on a ComfyUI server, follows its progress and downloads the "
                    "files it made.")
    parser.add_argument("workflow", help="API-format workflow JSON, e.g. workflows/wan21_t2v_1.3b_api.json")
    parser.add_argument("--server", default=DEFAULT_SERVER, help=f"ComfyUI address (default {DEFAULT_SERVER})")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE",
                        help="change an input before sending (repeatable), e.g. --set KinemaSampler.seed=7")
    parser.add_argument("--output", default="output", metavar="DIR", help="where downloads go (default ./output)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="give up waiting after this long (default: wait until done)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    graph = apply_sets(load_graph(args.workflow), args.sets)
    paths = submit(graph, args.server, Path(args.output), args.timeout,
                   report=lambda line: print(line, file=sys.stderr, flush=True))
    for path in paths:
        print(path)
    return 0
