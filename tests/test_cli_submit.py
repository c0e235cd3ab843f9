"""`kinema submit` against a small stand-in of ComfyUI's HTTP + WebSocket API (the real server is
exercised by test_host_comfyui.py): queueing, progress, errors, polling fallback, downloads."""
from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from kinema.cli import main
from kinema.cli.submit import SubmitError, submit
from workflow_cases import WORKFLOW_DIR, api_graph

VIDEO = b"\x00\x00\x00\x18ftypmp42 not really a video"
OUTPUT = {"filename": "wan_00001_.mp4", "subfolder": "kinema", "type": "output"}


class FakeComfyUI(ThreadingHTTPServer):
    def __init__(self, websocket=True, fail_node=None, reject=False):
        super().__init__(("127.0.0.1", 0), Handler)
        self.websocket, self.fail_node, self.reject = websocket, fail_node, reject
        self.queued = threading.Event()
        self.prompts = []
        self.ws_client_ids = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _json(self, body, status=200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.server.reject:
            return self._json({"error": {"type": "prompt_outputs_failed_validation",
                                         "message": "Prompt outputs failed validation", "details": ""},
                               "node_errors": {"6": {"class_type": "KinemaSampler", "errors": [
                                   {"message": "Value not in list", "details": "solver: 'heun' not in [...]"}]}}}, 400)
        self.server.prompts.append(body)
        self.server.queued.set()
        self._json({"prompt_id": "p1", "number": 0, "node_errors": {}})

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path == "/ws":
            return self._websocket(parse_qs(parts.query)["clientId"][0])
        if parts.path == "/history/p1":
            failed = self.server.fail_node is not None
            status = {"status_str": "error" if failed else "success", "completed": not failed, "messages": [
                ["execution_error", {"node_id": "6", "node_type": "KinemaSampler", "exception_message": "boom"}]
            ] if failed else []}
            return self._json({"p1": {"outputs": {} if failed else {"7": {"images": [OUTPUT], "animated": [True]}},
                                      "status": status}})
        if parts.path == "/view":
            assert parse_qs(parts.query) == {k: [v] for k, v in OUTPUT.items()}
            self.send_response(200)
            self.send_header("Content-Length", str(len(VIDEO)))
            self.end_headers()
            return self.wfile.write(VIDEO)
        self._json({"error": "not found"}, 404)

    def _websocket(self, client_id):
        if not self.server.websocket:
            return self._json({"error": "no websocket"}, 404)
        self.server.ws_client_ids.append(client_id)
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self._send_text({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}}})
        self.server.queued.wait(10)
        self._send_text({"type": "executing", "data": {"node": "6", "prompt_id": "p1"}})
        self._send_text({"type": "progress", "data": {"value": 1, "max": 2, "node": "6", "prompt_id": "p1"}})
        self._send_frame(0x2, struct.pack(">I", 1) + b"jpeg preview bytes")
        self._send_text({"type": "progress", "data": {"value": 1, "max": 9, "node": "3", "prompt_id": "other"}})
        if self.server.fail_node:
            self._send_text({"type": "execution_error", "data": {
                "prompt_id": "p1", "node_id": "6", "node_type": "KinemaSampler", "exception_type": "RuntimeError",
                "exception_message": "boom"}})
        self._send_text({"type": "executing", "data": {"node": None, "prompt_id": "p1"}})
        try:
            while self.rfile.read(1):  # until the client closes
                pass
        except OSError:
            pass

    def _send_text(self, message):
        self._send_frame(0x1, json.dumps(message).encode())

    def _send_frame(self, opcode, payload):
        length = len(payload)
        header = struct.pack("!BB", 0x80 | opcode, length) if length < 126 else \
            struct.pack("!BBH", 0x80 | opcode, 126, length)
        self.wfile.write(header + payload)
        self.wfile.flush()


@pytest.fixture
def server(request):
    fake = FakeComfyUI(**getattr(request, "param", {}))
    yield fake
    fake.shutdown()
    fake.server_close()


def test_submit_follows_the_websocket_and_downloads(server, tmp_path):
    lines = []
    paths = submit(api_graph("wan21_t2v_1.3b"), server.url, tmp_path, timeout=30, report=lines.append)
    assert paths == [tmp_path / "kinema" / "wan_00001_.mp4"] and paths[0].read_bytes() == VIDEO
    [body] = server.prompts
    assert body["prompt"] == api_graph("wan21_t2v_1.3b") and body["client_id"] == server.ws_client_ids[0]
    # Progress of another client's prompt ("node 3: 1/9") is not ours to report.
    assert "node 6: 1/2" in lines and not any(line.startswith("node 3") for line in lines)
    again = submit(api_graph("wan21_t2v_1.3b"), server.url, tmp_path, timeout=30)
    assert again == [tmp_path / "kinema" / "wan_00001_ (2).mp4"], "a download must never overwrite a file"


@pytest.mark.parametrize("server", [{"websocket": False}], indirect=True)
def test_submit_polls_the_history_without_a_websocket(server, tmp_path):
    assert submit(api_graph("wan21_t2v_1.3b"), server.url, tmp_path, timeout=30)[0].read_bytes() == VIDEO


@pytest.mark.parametrize("server", [{"reject": True}], indirect=True)
def test_rejected_graph_lists_the_node_errors(server, tmp_path):
    with pytest.raises(SubmitError) as error:
        submit(api_graph("wan21_t2v_1.3b"), server.url, tmp_path, timeout=30)
    message = str(error.value)
    assert "ComfyUI rejected POST /prompt (HTTP 400)" in message and "Prompt outputs failed validation" in message
    assert "node 6 (KinemaSampler): Value not in list: solver: 'heun' not in [...]" in message


@pytest.mark.parametrize("server", [{"fail_node": "6"}], indirect=True)
def test_execution_error_names_the_node(server, tmp_path):
    with pytest.raises(SubmitError, match=r"failed in node 6 \(KinemaSampler\): RuntimeError: boom"):
        submit(api_graph("wan21_t2v_1.3b"), server.url, tmp_path, timeout=30)


def test_unreachable_server_says_how_to_fix_it(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["submit", str(WORKFLOW_DIR / "wan21_t2v_1.3b_api.json"), "--server", f"http://127.0.0.1:{port}",
                 "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and f"cannot reach ComfyUI at http://127.0.0.1:{port}" in err and "--server URL" in err
