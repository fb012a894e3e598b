"""A real HTTP server on 127.0.0.1 that speaks the embedding providers' wire formats.

Not a mock of the HTTP client: the worker's httpx client talks to it over TCP. Vectors are
deterministic functions of the input text, so tests can check exactly what was stored. Tests
script failures per request (status codes, Retry-After, garbage bodies, latency) and per input
(a marker string in the text).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from the text: same text, same vector."""
    seed = hashlib.sha256(text.encode("utf-8")).digest()
    raw = []
    counter = 0
    while len(raw) < dimensions:
        block = hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        raw.extend(b / 255.0 - 0.5 for b in block)
        counter += 1
    values = raw[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # float32 round-trip so comparisons with what PostgreSQL stores are exact
    return [struct.unpack("f", struct.pack("f", v / norm))[0] for v in values]


@dataclass
class Scripted:
    """One scripted answer for the next request(s)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any


class FakeProvider:
    """Start with ``with FakeProvider() as provider:``; ``provider.url`` is the base URL."""

    def __init__(self, dimensions: int = 8) -> None:
        self.dimensions = dimensions
        self.requests: list[RecordedRequest] = []
        self.script: list[Scripted] = []
        self.fail_inputs_containing: dict[str, int] = {}
        self.latency = 0.0
        self.lock = threading.Lock()
        self.on_request: Callable[[RecordedRequest], None] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> FakeProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                status, payload, headers = provider.answer(self.path, dict(self.headers), body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # -- scripting ------------------------------------------------------------------------------
    def fail_next(
        self, status: int, times: int = 1, headers: dict[str, str] | None = None, body: Any = None
    ) -> None:
        with self.lock:
            self.script.append(
                Scripted(
                    status=status,
                    times=times,
                    headers=headers or {},
                    body=body
                    if body is not None
                    else {"error": {"message": f"scripted failure {status}", "type": "test"}},
                )
            )

    def embedded_texts(self) -> list[str]:
        texts: list[str] = []
        for request in self.requests:
            if isinstance(request.body, dict) and isinstance(request.body.get("input"), list):
                texts.extend(request.body["input"])
        return texts

    # -- answering ------------------------------------------------------------------------------
    def answer(
        self, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        request = RecordedRequest(path=path, headers=headers, body=body)
        with self.lock:
            self.requests.append(request)
            scripted = None
            if self.script:
                scripted = self.script[0]
                scripted.times -= 1
                if scripted.times <= 0:
                    self.script.pop(0)
        if self.on_request is not None:
            self.on_request(request)
        if self.latency:
            time.sleep(self.latency)
        if scripted is not None:
            return scripted.status, scripted.body, scripted.headers
        if path.endswith("/embeddings"):
            return self._openai(body)
        return 404, {"error": {"message": f"no route {path}"}}, {}

    def _openai(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not isinstance(body.get("input"), list):
            return 400, {"error": {"message": "input must be a list"}}, {}
        for marker, status in self.fail_inputs_containing.items():
            if any(marker in text for text in body["input"]):
                return status, {"error": {"message": f"input rejected ({marker})"}}, {}
        dims = int(body.get("dimensions") or self.dimensions)
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(text, dims)}
            for i, text in enumerate(body["input"])
        ]
        tokens = sum(len(t.split()) for t in body["input"])
        return (
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            {},
        )
