"""The async embedding-provider interface and what every provider shares.

A provider implements :meth:`Embedder._request` (one request for a list of texts). This base
class turns any number of texts into requests within the model's limits, sends them
concurrently up to a bound, paces them through the process-wide adaptive rate limiter of the
provider's endpoint and key (:mod:`pgai.vectorizer.embedders.ratelimit`), retries what a retry
can fix (429, 5xx, timeouts, connection errors; honouring ``Retry-After``), and checks every
response: one finite vector of the expected size per input, in order. Anything else is a
:class:`ProviderError`, never a silently wrong row.
"""

from __future__ import annotations

import math
import random
import sys
import time
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import anyio
import anyio.to_thread
import httpx
import orjson

from pgai.errors import PgaiError
from pgai.vectorizer.embedders.ratelimit import (
    AdaptiveRateLimiter,
    Slot,
    parse_retry_after,
    rate_limiter_for,
)

__all__ = [
    "RETRYABLE_STATUSES",
    "Embedder",
    "ProviderError",
    "ProviderObserver",
    "RetryPolicy",
    "add_provider_observer",
    "byte_token_estimate",
    "parse_retry_after",
    "remove_provider_observer",
    "response_json",
]

#: HTTP statuses a retry can fix.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

#: Total characters above which request planning (tokenizing) leaves the event loop.
TOKENIZE_IN_THREAD_CHARS = 50_000

#: The rate-limiter slot of the request the current task is sending (see Embedder._post).
_current_slot: ContextVar[Slot | None] = ContextVar("pgai_current_rate_limit_slot", default=None)


def response_json(response: httpx.Response) -> Any:
    """The response body as JSON, parsed with orjson: an embeddings response carries millions
    of numbers, and the standard parser spends more CPU on them than the rest of a batch.
    Raises ValueError when the body is not JSON."""
    return orjson.loads(response.content)


T = TypeVar("T")


def _as_is(vector: list[float]) -> list[float]:
    return vector


def _all_finite_numbers(vector: list[float]) -> bool:
    """Whether every element is a finite int or float, at C speed (a response carries millions
    of numbers): the types are checked as a set, and a sum is non-finite when one element is
    (NaN and infinity propagate). Finite values whose sum overflows are no embedding."""
    if isinstance(vector, array):
        if vector.typecode == "f" and _no_float32_exponent_all_ones(vector):
            return True
    elif not set(map(type, vector)) <= _NUMBER_TYPES:
        return False
    return math.isfinite(sum(vector))


def _no_float32_exponent_all_ones(vector: array[float]) -> bool:
    """True when no float32 of ``vector`` can be NaN or infinite, looking at bytes only: those
    need an exponent of all ones, so a high byte of 0x7f or 0xff. Embeddings (|x| <= 1) never
    have one, and summing 768 floats costs ten times more than this."""
    high = vector.tobytes()[3 if sys.byteorder == "little" else 0 :: 4]
    return b"\x7f" not in high and b"\xff" not in high


_NUMBER_TYPES = frozenset({float, int})


class ProviderObserver(Protocol):
    """Told about every HTTP request to an embedding provider and every retry (the metrics)."""

    def request_finished(self, provider: str, seconds: float, status: int | None) -> None:
        """A request ended: its duration and HTTP status (None: no response, e.g. a timeout)."""

    def request_retried(self, provider: str, reason: str) -> None:
        """A failed request is sent again; ``reason`` is ``rate_limited`` or ``error``."""


#: Process-wide observers of provider requests: every embedder of the process reports to them.
_observers: list[ProviderObserver] = []


def add_provider_observer(observer: ProviderObserver) -> None:
    """Report every provider request of this process to ``observer`` (once, however often
    it is added)."""
    if observer not in _observers:
        _observers.append(observer)


def remove_provider_observer(observer: ProviderObserver) -> None:
    """Stop reporting to ``observer``."""
    if observer in _observers:
        _observers.remove(observer)


class ProviderError(PgaiError):
    """The embedding provider failed. ``retryable`` says whether the same request may succeed
    later; ``status`` is the HTTP status when there was a response."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.headers = headers

    @property
    def rate_limited(self) -> bool:
        """A 429 is the provider pacing us, not a fault of the rows being embedded."""
        return self.status == 429


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter; ``Retry-After`` wins when the provider sends it.

    ``attempts`` bounds the tries of a request that fails (5xx, timeout, ...). A 429 does not
    use up those attempts: the rate limiter pauses every request to the provider instead, up to
    ``rate_limit_attempts`` times and ``rate_limit_patience`` seconds per request; after that
    the rate-limit error goes to the worker, which pauses without counting a row failure.
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    rate_limit_attempts: int = 30
    rate_limit_patience: float = 300.0

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after is not None and 0 <= retry_after <= self.max_delay * 4:
            return retry_after
        backoff: float = min(self.base_delay * float(2**retry), self.max_delay)
        return backoff * (1 - 0.25 * random.random())


def byte_token_estimate(text: str) -> int:
    """A quarter token per UTF-8 byte, rounded up: how OpenAI estimates a request's size."""
    return math.ceil(len(text.encode("utf-8")) / 4)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


class Embedder(ABC):
    """One configured model of one provider. Create with :func:`make_embedder`."""

    implementation: ClassVar[str]
    #: Inputs per request the provider accepts.
    max_inputs_per_request: int = 2048
    #: Tokens per request (None: no limit known).
    max_tokens_per_request: int | None = None
    #: Requests of one :meth:`embed` call in flight at once.
    max_concurrent_requests: int = 4
    #: Whether requests go through the shared rate limiter (not for in-process models).
    uses_rate_limiter: ClassVar[bool] = True
    #: The endpoint requests go to, and the key they carry: together with the implementation
    #: they name the rate limiter this embedder shares with every other one of the process.
    url: str = ""
    api_key: str | None = None

    def __init__(
        self, *, dimensions: int | None, client: httpx.AsyncClient, retry: RetryPolicy
    ) -> None:
        self.dimensions = dimensions
        self.client = client
        self.retry = retry
        self.requests_sent = 0
        self._rate_limiter: AdaptiveRateLimiter | None = None

    async def setup(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Prepare once per run (e.g. pull a model); the default does nothing."""

    @property
    def rate_limiter(self) -> AdaptiveRateLimiter:
        """The process-wide limiter of this provider's endpoint and key."""
        if self._rate_limiter is None:
            self._rate_limiter = rate_limiter_for(
                self.implementation, self.url or self.implementation, self.api_key
            )
        return self._rate_limiter

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs against the per-request limit; a byte estimate by default."""
        return byte_token_estimate(text)

    def plan_requests(self, texts: Sequence[str]) -> list[range]:
        """Split inputs into consecutive requests within the count and token limits."""
        return [part for part, _tokens in self._plan(texts)]

    def _plan(self, texts: Sequence[str]) -> list[tuple[range, int]]:
        """Requests as (input range, tokens it carries). The tokens are counted even without a
        per-request limit: the rate limiter spends them against the provider's token budget."""
        limit = self.max_tokens_per_request
        plans: list[tuple[range, int]] = []
        start = 0
        tokens = 0
        for i, text in enumerate(texts):
            cost = self.count_tokens(text)
            if limit and cost > limit:
                raise ProviderError(
                    f"input {i} has {cost} tokens, more than the {limit} one request to the "
                    f"{self.implementation} API may carry; lower chunk_size",
                    provider=self.implementation,
                )
            full = i - start >= self.max_inputs_per_request
            over = bool(limit) and tokens + cost > (limit or 0)
            if i > start and (full or over):
                plans.append((range(start, i), tokens))
                start, tokens = i, 0
            tokens += cost
        if start < len(texts):
            plans.append((range(start, len(texts)), tokens))
        return plans

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        return await self.embed_packed(texts, _as_is)

    async def embed_packed(self, texts: Sequence[str], pack: Callable[[list[float]], T]) -> list[T]:
        """One vector per text, in order, each passed through ``pack`` as soon as its response
        arrives: a caller that keeps vectors in a compact form never holds a whole batch of
        them as Python lists."""
        if not texts:
            return []
        texts = await self.prepare_inputs(texts)
        if sum(map(len, texts)) > TOKENIZE_IN_THREAD_CHARS:
            # Tokenizing many long texts is CPU work: keep the event loop serving I/O.
            plans = await anyio.to_thread.run_sync(self._plan, texts)
        else:
            plans = self._plan(texts)
        results: list[list[T] | None] = [None] * len(plans)
        limiter = anyio.Semaphore(self.max_concurrent_requests)

        async def run(index: int, part: range, tokens: int) -> None:
            async with limiter:
                vectors = await self._request_with_retry([texts[i] for i in part], tokens)
                results[index] = [pack(vector) for vector in vectors]

        if len(plans) == 1:
            await run(0, *plans[0])
        else:
            try:
                async with anyio.create_task_group() as tg:
                    for index, (part, tokens) in enumerate(plans):
                        tg.start_soon(run, index, part, tokens)
            except ExceptionGroup as group:
                # The first failed request cancelled its siblings; report that one.
                raise _first_error(group) from None
        packed: list[T] = []
        for part_result in results:
            assert part_result is not None
            packed.extend(part_result)
        return packed

    async def prepare_inputs(self, texts: Sequence[str]) -> Sequence[str]:
        """What is sent for ``texts`` (e.g. truncated to the model's context); as is by default."""
        return texts

    async def _request_with_retry(self, texts: list[str], tokens: int = 0) -> list[list[float]]:
        retry = 0
        rate_limited_retries = 0
        started = time.monotonic()
        while True:
            error, vectors = await self._attempt(texts, tokens)
            if vectors is not None:
                return vectors
            assert error is not None
            if error.rate_limited and error.retryable:
                # The limiter already paused every request to this provider; go again once
                # the pause is over, unless we have waited long enough for this request.
                rate_limited_retries += 1
                waited = time.monotonic() - started
                wait = error.retry_after or 0.0
                if (
                    rate_limited_retries > self.retry.rate_limit_attempts
                    or waited + wait > self.retry.rate_limit_patience
                ):
                    raise error
                self._report_retry("rate_limited")
                continue
            if not error.retryable or retry + 1 >= self.retry.attempts:
                raise error
            self._report_retry("error")
            await anyio.sleep(self.retry.delay(retry, error.retry_after))
            retry += 1

    async def _attempt(
        self, texts: list[str], tokens: int
    ) -> tuple[ProviderError | None, list[list[float]] | None]:
        """Send one request (through the rate limiter when the provider uses it)."""
        if not self.uses_rate_limiter:
            return await self._send_and_check(texts, None)
        async with self.rate_limiter.slot(tokens) as slot:
            error, vectors = await self._send_and_check(texts, slot)
            if vectors is not None:
                slot.succeeded()
            elif error is not None and error.rate_limited:
                slot.rate_limited(error.headers)
            return error, vectors

    async def _send_and_check(
        self, texts: list[str], slot: Slot | None
    ) -> tuple[ProviderError | None, list[list[float]] | None]:
        self.requests_sent += 1
        token = _current_slot.set(slot)
        try:
            vectors = await self._request(texts)
            self._validate(texts, vectors)
        except httpx.TimeoutException as exc:
            return (
                ProviderError(
                    f"request to the {self.implementation} API timed out: {exc!r}",
                    provider=self.implementation,
                    retryable=True,
                ),
                None,
            )
        except httpx.TransportError as exc:
            return (
                ProviderError(
                    f"could not reach the {self.implementation} API at {self.url or '?'}: {exc!r}",
                    provider=self.implementation,
                    retryable=True,
                ),
                None,
            )
        except ProviderError as exc:
            return exc, None
        finally:
            _current_slot.reset(token)
        return None, vectors

    async def _post(
        self,
        url: str,
        *,
        json: Any,
        headers: Mapping[str, str] | None = None,
        request_timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """POST through the shared client (with its timeouts unless ``request_timeout`` is
        given); the rate limiter learns from the response headers, the observers (metrics)
        from its duration and status."""
        started = time.monotonic()
        try:
            # orjson writes the body (megabytes of chunk text) several times faster than json
            content = orjson.dumps(json)
            headers = {**(headers or {}), "content-type": "application/json"}
            if request_timeout is None:
                response = await self.client.post(url, content=content, headers=headers)
            else:
                response = await self.client.post(
                    url, content=content, headers=headers, timeout=request_timeout
                )
        except httpx.TransportError:  # timeouts too; a cancelled request is not reported
            self._report_request(time.monotonic() - started, None)
            raise
        self._report_request(time.monotonic() - started, response.status_code)
        slot = _current_slot.get()
        if slot is not None:
            slot.observe(response.headers)
        return response

    def _report_request(self, seconds: float, status: int | None) -> None:
        for observer in _observers:
            observer.request_finished(self.implementation, seconds, status)

    def _report_retry(self, reason: str) -> None:
        for observer in _observers:
            observer.request_retried(self.implementation, reason)

    def _validate(self, texts: list[str], vectors: list[list[float]]) -> None:
        if len(vectors) != len(texts):
            raise ProviderError(
                f"the {self.implementation} API returned {len(vectors)} embeddings for "
                f"{len(texts)} inputs",
                provider=self.implementation,
            )
        expected = self.dimensions
        for i, vector in enumerate(vectors):
            if expected is None:
                # No configured size: the first vector sets it for the rest of the response.
                expected = len(vector)
            if not isinstance(vector, list | array) or len(vector) != expected or not vector:
                size = len(vector) if isinstance(vector, list | array) else type(vector).__name__
                raise ProviderError(
                    f"the {self.implementation} API returned an embedding of {size} "
                    f"dimensions for input {i}, but the vectorizer expects {expected}: "
                    "fix dimensions in the embedding config or the model",
                    provider=self.implementation,
                )
            if not _all_finite_numbers(vector):
                bad = next(
                    x
                    for x in vector
                    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x)
                )
                raise ProviderError(
                    f"the {self.implementation} API returned a non-finite or non-numeric "
                    f"value ({bad!r}) in the embedding of input {i}",
                    provider=self.implementation,
                )

    def error_from_response(self, response: httpx.Response) -> ProviderError:
        """A ProviderError for a non-2xx response, with the provider's own message."""
        detail = response.text[:500]
        try:
            body = response.json()
            if isinstance(body, dict):
                err = body.get("error", body.get("detail", body))
                if isinstance(err, dict):
                    detail = str(err.get("message") or err)
                elif err:
                    detail = str(err)
        except ValueError:
            pass
        hint = {
            401: " (check the API key)",
            403: " (the API key may not have access to this model)",
            404: " (check the model name and base_url)",
        }.get(response.status_code, "")
        retryable = response.status_code in RETRYABLE_STATUSES or response.status_code >= 500
        should_retry = response.headers.get("x-should-retry", "").lower()
        if should_retry in ("true", "false"):
            retryable = should_retry == "true"
        return ProviderError(
            f"{self.implementation} API error {response.status_code}: {detail}{hint}",
            provider=self.implementation,
            status=response.status_code,
            retryable=retryable,
            retry_after=parse_retry_after(response.headers),
            headers=response.headers,
        )

    def malformed_response(self, response: httpx.Response, what: str) -> ProviderError:
        """A ProviderError for a 2xx response whose body is not what the API documents."""
        return ProviderError(
            f"the {self.implementation} API returned a response that is not {what}: "
            f"{response.text[:200]!r}",
            provider=self.implementation,
            status=response.status_code,
            retryable=False,
        )

    @abstractmethod
    async def _request(self, texts: list[str]) -> list[list[float]]:
        """Send one request and return its vectors (validated by the caller)."""
