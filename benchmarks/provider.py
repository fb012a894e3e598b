"""A fast fake embedding provider speaking OpenAI's ``POST /v1/embeddings`` wire format.

It runs in a process of its own (``python -m benchmarks.provider``), so the workers under test
and the harness never share its interpreter, and it answers from a single asyncio loop: a 200 ms
latency costs a timer, not a thread. Vectors are unit vectors drawn from a fixed pool,
pre-encoded as JSON text (and as base64 float32), chosen by a CRC of the input: building a
response costs a few string joins per input, so the server stays far from being the
bottleneck (the harness measures that: the "provider floor"). The thread-per-request test server
(tests/fake_provider.py), which hashes every input into a fresh vector, answered the same
768-dimension requests about 20 times slower, below our worker's own chunk rate.

Behaviour is set at run time through ``/_bench/*`` endpoints (used by :class:`ProviderClient`):

- ``latency_ms``: delay before every successful answer;
- ``tokens_per_minute``: a token bucket like OpenAI's limiter (capacity one minute of tokens,
  refilled continuously, starting *empty* so a whole run measures the sustained rate). A request
  that does not fit gets 429 at once, with ``Retry-After``/``retry-after-ms`` (when it will fit)
  and the ``x-ratelimit-*`` headers (remaining tokens, time until the bucket is full);
- ``record``: keep the raw request bodies, for replaying the same requests without a database.

Tokens are counted the way OpenAI's limiter estimates them: a quarter token per UTF-8 byte of
each input, rounded up.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import random
import resource
import signal
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx

POOL_SIZE = 2048
DEFAULT_DIMENSIONS = 1536
MAX_HEADER_BYTES = 65536


def estimate_tokens(texts: list[str]) -> int:
    """OpenAI's rate-limit estimate: ceil(UTF-8 bytes / 4) per input."""
    return sum((len(t.encode("utf-8")) + 3) // 4 for t in texts)


def openai_duration(seconds: float) -> str:
    """A duration the way OpenAI's ``x-ratelimit-reset-*`` headers spell it: ``20ms``, ``1.5s``,
    ``6m0s``."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    if minutes:
        return f"{int(minutes)}m{rest:.3g}s"
    return f"{rest:.3g}s"


@dataclass
class VectorPool:
    """``POOL_SIZE`` unit vectors of one dimension, as JSON arrays and as base64 float32."""

    as_json: list[bytes]
    as_base64: list[bytes]

    @classmethod
    def build(cls, dimensions: int) -> VectorPool:
        rng = random.Random(dimensions)
        as_json: list[bytes] = []
        as_base64: list[bytes] = []
        for _ in range(POOL_SIZE):
            values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
            norm = math.sqrt(sum(v * v for v in values)) or 1.0
            packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
            floats = struct.unpack(f"<{dimensions}f", packed)
            # 9 significant digits round-trip a float32, about what OpenAI sends.
            as_json.append(("[" + ",".join(f"{v:.9g}" for v in floats) + "]").encode())
            as_base64.append(b'"' + base64.b64encode(packed) + b'"')
        return cls(as_json, as_base64)


@dataclass
class TokenBucket:
    """Tokens per minute, refilled continuously; capacity one minute of tokens. It starts
    empty at the first request, so start-up time earns a worker no tokens."""

    per_minute: int
    level: float = 0.0
    updated: float | None = None

    @property
    def rate(self) -> float:
        return self.per_minute / 60.0

    def _refill(self, now: float) -> None:
        if self.updated is None:
            self.updated = now
        self.level = min(float(self.per_minute), self.level + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, cost: int) -> tuple[bool, float]:
        """Take ``cost`` tokens if they are there; else (False, seconds until they will be)."""
        self._refill(time.monotonic())
        if cost <= self.level:
            self.level -= cost
            return True, 0.0
        if cost > self.per_minute:
            return False, 60.0
        return False, (cost - self.level) / self.rate

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-tokens": str(self.per_minute),
            "x-ratelimit-remaining-tokens": str(int(self.level)),
            "x-ratelimit-reset-tokens": openai_duration((self.per_minute - self.level) / self.rate),
            # OpenAI always sends the request limit too; this one is never the binding one.
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-reset-requests": "6ms",
        }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Stats:
    requests: int = 0
    ok_requests: int = 0
    rate_limited: int = 0
    errors: int = 0
    inputs: int = 0
    tokens: int = 0
    tokens_rejected: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    first_request: float | None = None
    last_response: float | None = None
    max_inputs_per_request: int = 0
    cpu_at_reset: float = field(default_factory=lambda: _cpu_seconds())

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        span = None
        if self.first_request is not None and self.last_response is not None:
            span = self.last_response - self.first_request
        data["busy_seconds"] = span
        data["server_cpu_seconds"] = _cpu_seconds() - self.cpu_at_reset
        return data


class EmbeddingServer:
    """The HTTP server; one instance per process."""

    def __init__(self) -> None:
        self.latency = 0.0
        self.bucket: TokenBucket | None = None
        self.record = False
        self.recorded: list[bytes] = []
        self.stats = Stats()
        self.pools: dict[int, VectorPool] = {}

    def pool(self, dimensions: int) -> VectorPool:
        if dimensions not in self.pools:
            self.pools[dimensions] = VectorPool.build(dimensions)
        return self.pools[dimensions]

    # -- HTTP -----------------------------------------------------------------------------------
    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    await self._send(writer, 431, b'{"error":"headers too large"}', {}, False)
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                keep_alive = headers.get("connection", "").lower() != "close"
                status, payload, extra = await self.handle(method, path, body)
                await self._send(writer, status, payload, extra, keep_alive)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: bytes,
        headers: dict[str, str],
        keep_alive: bool,
    ) -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}
        lines = [
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}",
            "content-type: application/json",
            f"content-length: {len(payload)}",
            f"connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()

    async def handle(
        self, method: str, path: str, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        if path.endswith("/embeddings") and method == "POST":
            return await self.embeddings(body)
        if path == "/_bench/stats":
            return 200, json.dumps(self.stats.as_dict()).encode(), {}
        if path == "/_bench/reset" and method == "POST":
            self.stats = Stats()
            self.recorded = []
            return 200, b"{}", {}
        if path == "/_bench/configure" and method == "POST":
            settings = json.loads(body or b"{}")
            self.latency = float(settings.get("latency_ms", 0)) / 1000.0
            tpm = settings.get("tokens_per_minute")
            self.bucket = TokenBucket(int(tpm)) if tpm else None
            self.record = bool(settings.get("record", False))
            return 200, b"{}", {}
        if path == "/_bench/recorded":
            return 200, b"[" + b",".join(self.recorded) + b"]", {}
        return 404, b'{"error":{"message":"no such route"}}', {}

    async def embeddings(self, raw: bytes) -> tuple[int, bytes, dict[str, str]]:
        stats = self.stats
        now = time.monotonic()
        if stats.first_request is None:
            stats.first_request = now
        stats.requests += 1
        stats.request_bytes += len(raw)
        try:
            body = json.loads(raw)
            texts = body["input"]
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError("input must be a string or a list of strings")
        except (ValueError, KeyError, TypeError) as exc:
            stats.errors += 1
            message = json.dumps({"error": {"message": str(exc), "type": "invalid_request_error"}})
            return 400, message.encode(), {}
        cost = estimate_tokens(texts)
        headers: dict[str, str] = {}
        if self.bucket is not None:
            allowed, wait = self.bucket.take(cost)
            headers = self.bucket.headers()
            if not allowed:
                stats.rate_limited += 1
                stats.tokens_rejected += cost
                headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
                headers["retry-after"] = str(max(1, math.ceil(wait)))
                message = (
                    f"Rate limit reached for text-embedding-3-small on tokens per min (TPM): "
                    f"Limit {self.bucket.per_minute}, Requested {cost}. "
                    f"Please try again in {openai_duration(wait)}."
                )
                error = {
                    "error": {
                        "message": message,
                        "type": "tokens",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                }
                return 429, json.dumps(error).encode(), headers
        if self.record:
            self.recorded.append(raw)
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            payload = self._response(body, texts, cost)
        finally:
            stats.in_flight -= 1
        stats.ok_requests += 1
        stats.inputs += len(texts)
        stats.tokens += cost
        stats.max_inputs_per_request = max(stats.max_inputs_per_request, len(texts))
        stats.response_bytes += len(payload)
        stats.last_response = time.monotonic()
        return 200, payload, headers

    def _response(self, body: dict[str, Any], texts: list[str], tokens: int) -> bytes:
        pool = self.pool(int(body.get("dimensions") or DEFAULT_DIMENSIONS))
        vectors = pool.as_base64 if body.get("encoding_format") == "base64" else pool.as_json
        items = [
            b'{"object":"embedding","index":%d,"embedding":%s}'
            % (i, vectors[zlib.crc32(text.encode("utf-8")) % POOL_SIZE])
            for i, text in enumerate(texts)
        ]
        model = json.dumps(body.get("model", "text-embedding-3-small")).encode()
        return b"".join(
            [
                b'{"object":"list","data":[',
                b",".join(items),
                b'],"model":',
                model,
                b',"usage":{"prompt_tokens":%d,"total_tokens":%d}}' % (tokens, tokens),
            ]
        )


async def serve(host: str, port: int, dimensions: list[int]) -> None:
    server_state = EmbeddingServer()
    for dims in dimensions:
        server_state.pool(dims)
    server = await asyncio.start_server(
        server_state.serve_connection, host, port, limit=MAX_HEADER_BYTES, backlog=512
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dimensions", type=int, action="append", default=[])
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.dimensions))


class ProviderClient:
    """The harness's handle on a provider process: start, configure, read counters, stop."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self._http: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        """The OpenAI-style base URL for ``ai.embedding_openai(..., base_url => ...)``."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.provider",
            "--dimensions",
            str(self.dimensions),
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=60)
        if not line.startswith(b"PORT "):
            raise RuntimeError(f"the fake provider did not start: {line!r}")
        self.port = int(line.split()[1])
        self._http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()

    async def configure(
        self, latency_ms: float = 0, tokens_per_minute: int | None = None, record: bool = False
    ) -> None:
        """Set the behaviour and zero the counters."""
        assert self._http is not None
        settings = {
            "latency_ms": latency_ms,
            "tokens_per_minute": tokens_per_minute,
            "record": record,
        }
        (await self._http.post("/_bench/configure", json=settings)).raise_for_status()
        (await self._http.post("/_bench/reset")).raise_for_status()

    async def stats(self) -> dict[str, Any]:
        assert self._http is not None
        response = await self._http.get("/_bench/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def recorded(self) -> list[bytes]:
        """The raw bodies of the successful embedding requests since the last configure."""
        assert self._http is not None
        response = await self._http.get("/_bench/recorded")
        response.raise_for_status()
        return [json.dumps(body).encode() for body in response.json()]


async def replay(port: int, bodies: list[bytes], concurrency: int) -> float:
    """Send ``bodies`` to the provider over ``concurrency`` keep-alive connections and read every
    answer in full; the seconds it took (the provider floor: no database, no worker)."""
    queue = list(reversed(bodies))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        try:
            while queue:
                body = queue.pop()
                writer.write(
                    b"POST /v1/embeddings HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                    b"content-type: application/json\r\ncontent-length: %d\r\n\r\n"
                    % len(body)
                    + body
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"replayed request failed: {head[:40]!r}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(max(1, concurrency))))
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
