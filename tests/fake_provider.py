"""A real HTTP server on 127.0.0.1 that speaks the embedding providers' wire formats.

Not a mock of the HTTP client: the worker's httpx client talks to it over TCP. Vectors are
deterministic functions of the input text, so tests can check exactly what was stored. Tests
script failures per request (status codes, Retry-After, garbage bodies, latency) and per input
(a marker string in the text).

Formats: OpenAI (``POST /v1/embeddings``), Voyage (the same path; told apart by its
``truncation``/``input_type`` keys; floats, or base64 little-endian float32 when asked) and
Ollama (``/api/embed``, ``/api/show``, ``/api/pull``). ``limit_tokens_per_window`` makes it
enforce a tokens-per-minute style limit, answering 429 with ``Retry-After`` and OpenAI's
``x-ratelimit-*`` headers when a request does not fit.
"""

from __future__ import annotations

import base64
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
        #: Ollama: models the server has (others 404 on /api/show until pulled), pulls seen.
        self.ollama_models: set[str] = set()
        self.ollama_pulls: list[str] = []
        #: Voyage: answer with base64 embeddings even when the client did not ask for them.
        self.voyage_base64 = False
        #: Token-rate limit: at most ``tokens_per_window`` estimated tokens per window.
        self.tokens_per_window: int | None = None
        self.window_seconds = 1.0
        self._window_start = 0.0
        self._window_used = 0
        self.rate_limited_responses = 0
        #: Requests being answered right now, and the most at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> FakeProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per response, sent at once: no Nagle/delayed-ACK stalls of 40 ms.
            disable_nagle_algorithm = True
            wbufsize = 1 << 16

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
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``: the root, as Ollama's host setting names it."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The OpenAI/Voyage-style base URL (``.../v1``)."""
        return f"{self.base}/v1"

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

    def limit_tokens_per_window(self, tokens: int, window_seconds: float = 1.0) -> None:
        """Enforce a token rate: requests beyond ``tokens`` per window get 429."""
        with self.lock:
            self.tokens_per_window = tokens
            self.window_seconds = window_seconds
            self._window_start = time.monotonic()
            self._window_used = 0

    def embedding_requests(self) -> list[RecordedRequest]:
        """Requests that asked for embeddings, in any format."""
        return [r for r in self.requests if r.path.endswith(("/embeddings", "/api/embed"))]

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
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            scripted = None
            if self.script:
                scripted = self.script[0]
                scripted.times -= 1
                if scripted.times <= 0:
                    self.script.pop(0)
        try:
            if self.on_request is not None:
                self.on_request(request)
            if self.latency:
                time.sleep(self.latency)
            if scripted is not None:
                return scripted.status, scripted.body, scripted.headers
            return self._route(path, body)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _route(self, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if path.endswith("/api/show"):
            return self._ollama_show(body)
        if path.endswith("/api/pull"):
            return self._ollama_pull(body)
        if not path.endswith(("/embeddings", "/api/embed")):
            return 404, {"error": {"message": f"no route {path}"}}, {}
        if not isinstance(body, dict) or not isinstance(body.get("input"), list):
            return 400, {"error": {"message": "input must be a list"}}, {}
        for marker, status in self.fail_inputs_containing.items():
            if any(marker in text for text in body["input"]):
                return status, {"error": {"message": f"input rejected ({marker})"}}, {}
        limited, rate_headers = self._take_tokens(body["input"])
        if limited is not None:
            return limited[0], limited[1], rate_headers
        if path.endswith("/api/embed"):
            status, payload, extra = self._ollama_embed(body)
        elif "truncation" in body or "input_type" in body:
            status, payload, extra = self._voyage(body)
        else:
            status, payload, extra = self._openai(body)
        return status, payload, {**rate_headers, **extra}

    @staticmethod
    def estimate_tokens(texts: list[str]) -> int:
        """What the limit counts: a quarter token per UTF-8 byte, rounded up per input."""
        return sum(math.ceil(len(t.encode("utf-8")) / 4) for t in texts)

    def _take_tokens(self, texts: list[str]) -> tuple[tuple[int, Any] | None, dict[str, str]]:
        if self.tokens_per_window is None:
            return None, {}
        cost = self.estimate_tokens(texts)
        with self.lock:
            now = time.monotonic()
            if now - self._window_start >= self.window_seconds:
                self._window_start, self._window_used = now, 0
            reset = max(0.0, self._window_start + self.window_seconds - now)
            allowed = self._window_used + cost <= self.tokens_per_window
            if allowed:
                self._window_used += cost
            else:
                self.rate_limited_responses += 1
            remaining = self.tokens_per_window - self._window_used
        headers = {
            "x-ratelimit-limit-tokens": str(self.tokens_per_window),
            "x-ratelimit-remaining-tokens": str(remaining),
            "x-ratelimit-reset-tokens": f"{max(1, round(reset * 1000))}ms",
        }
        if allowed:
            return None, headers
        headers["retry-after-ms"] = str(max(1, round(reset * 1000)))
        headers["retry-after"] = str(math.ceil(reset))
        message = (
            f"Rate limit reached: limit {self.tokens_per_window} tokens per window, "
            f"requested {cost}"
        )
        error = {"error": {"message": message, "type": "tokens", "code": "rate_limit_exceeded"}}
        return (429, error), headers

    def _openai(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
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

    def _voyage(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if body.get("input_type") not in (None, "query", "document"):
            return 400, {"detail": "input_type must be query, document or null"}, {}
        dims = int(body.get("output_dimension") or self.dimensions)
        as_base64 = self.voyage_base64 or body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(body["input"]):
            vector: Any = fake_vector(text, dims)
            if as_base64:
                vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "embedding": vector, "index": i})
        tokens = sum(len(t.split()) for t in body["input"])
        return (
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"total_tokens": tokens},
            },
            {},
        )

    def _ollama_embed(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        model = body.get("model")
        if self.ollama_models and model not in self.ollama_models:
            return 404, {"error": f"model '{model}' not found, try pulling it first"}, {}
        return (
            200,
            {
                "model": model,
                "embeddings": [fake_vector(text, self.dimensions) for text in body["input"]],
                "total_duration": 1000,
                "load_duration": 10,
                "prompt_eval_count": sum(len(t.split()) for t in body["input"]),
            },
            {},
        )

    def _ollama_show(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        model = body.get("model") if isinstance(body, dict) else None
        if model not in self.ollama_models:
            return 404, {"error": f"model '{model}' not found"}, {}
        return (
            200,
            {
                "modelfile": f"FROM {model}",
                "details": {"format": "gguf", "family": "bert"},
                "model_info": {
                    "general.architecture": "bert",
                    "bert.embedding_length": self.dimensions,
                },
            },
            {},
        )

    def _ollama_pull(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or model.startswith("missing"):
            return 500, {"error": "pull model manifest: file does not exist"}, {}
        with self.lock:
            self.ollama_pulls.append(model)
            self.ollama_models.add(model)
        return 200, {"status": "success"}, {}
