"""The async embedding-provider interface and what every provider shares.

A provider implements :meth:`Embedder._request` (one HTTP request for a list of texts). This
base class turns any number of texts into requests within the model's limits, sends them
concurrently up to a bound, retries what a retry can fix (429, 5xx, timeouts, connection
errors; honouring ``Retry-After``), and checks every response: one finite vector of the
expected size per input, in order. Anything else is a :class:`ProviderError`, never a silently
wrong row.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import ClassVar

import anyio
import httpx

from pgai.errors import PgaiError

#: HTTP statuses a retry can fix.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


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
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    @property
    def rate_limited(self) -> bool:
        """A 429 is the provider pacing us, not a fault of the rows being embedded."""
        return self.status == 429


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter; ``Retry-After`` wins when the provider sends it."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None and 0 <= retry_after <= self.max_delay * 4:
            return retry_after
        backoff: float = min(self.base_delay * float(2**retry), self.max_delay)
        return backoff * (1 - 0.25 * random.random())


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime

    return max(0.0, (when - datetime.now(UTC)).total_seconds())


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

    def __init__(
        self, *, dimensions: int | None, client: httpx.AsyncClient, retry: RetryPolicy
    ) -> None:
        self.dimensions = dimensions
        self.client = client
        self.retry = retry
        self.requests_sent = 0

    async def setup(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Prepare once per run (e.g. pull a model); the default does nothing."""

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs against the per-request limit; a byte estimate by default."""
        return math.ceil(len(text.encode("utf-8")) / 4)

    def plan_requests(self, texts: Sequence[str]) -> list[range]:
        """Split inputs into consecutive requests within the count and token limits."""
        plans: list[range] = []
        start = 0
        tokens = 0
        for i, text in enumerate(texts):
            cost = self.count_tokens(text) if self.max_tokens_per_request else 0
            if self.max_tokens_per_request and cost > self.max_tokens_per_request:
                raise ProviderError(
                    f"input {i} has {cost} tokens, more than the {self.max_tokens_per_request} "
                    "one request may carry; lower chunk_size",
                    provider=self.implementation,
                )
            full = i - start >= self.max_inputs_per_request
            over = bool(self.max_tokens_per_request) and tokens + cost > (
                self.max_tokens_per_request or 0
            )
            if i > start and (full or over):
                plans.append(range(start, i))
                start, tokens = i, 0
            tokens += cost
        if start < len(texts):
            plans.append(range(start, len(texts)))
        return plans

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        if not texts:
            return []
        plans = self.plan_requests(texts)
        results: list[list[list[float]] | None] = [None] * len(plans)
        limiter = anyio.Semaphore(self.max_concurrent_requests)

        async def run(index: int, part: range) -> None:
            async with limiter:
                results[index] = await self._request_with_retry([texts[i] for i in part])

        if len(plans) == 1:
            await run(0, plans[0])
        else:
            try:
                async with anyio.create_task_group() as tg:
                    for index, part in enumerate(plans):
                        tg.start_soon(run, index, part)
            except ExceptionGroup as group:
                # The first failed request cancelled its siblings; report that one.
                raise _first_error(group) from None
        vectors: list[list[float]] = []
        for part_result in results:
            assert part_result is not None
            vectors.extend(part_result)
        return vectors

    async def _request_with_retry(self, texts: list[str]) -> list[list[float]]:
        retry = 0
        while True:
            try:
                self.requests_sent += 1
                vectors = await self._request(texts)
                self._validate(texts, vectors)
                return vectors
            except httpx.TimeoutException as exc:
                error = ProviderError(
                    f"request to the {self.implementation} API timed out: {exc!r}",
                    provider=self.implementation,
                    retryable=True,
                )
            except httpx.TransportError as exc:
                error = ProviderError(
                    f"could not reach the {self.implementation} API: {exc!r}",
                    provider=self.implementation,
                    retryable=True,
                )
            except ProviderError as exc:
                error = exc
            if not error.retryable or retry + 1 >= self.retry.attempts:
                raise error
            await anyio.sleep(self.retry.delay(retry, error.retry_after))
            retry += 1

    def _validate(self, texts: list[str], vectors: list[list[float]]) -> None:
        if len(vectors) != len(texts):
            raise ProviderError(
                f"the {self.implementation} API returned {len(vectors)} embeddings for "
                f"{len(texts)} inputs",
                provider=self.implementation,
            )
        for i, vector in enumerate(vectors):
            if self.dimensions is not None and len(vector) != self.dimensions:
                raise ProviderError(
                    f"the {self.implementation} API returned an embedding of {len(vector)} "
                    f"dimensions for input {i}, but the vectorizer expects {self.dimensions}: "
                    "fix dimensions in the embedding config or the model",
                    provider=self.implementation,
                )
            if not all(isinstance(x, int | float) and math.isfinite(x) for x in vector):
                raise ProviderError(
                    f"the {self.implementation} API returned a non-finite or non-numeric value "
                    f"in the embedding of input {i}",
                    provider=self.implementation,
                )

    def error_from_response(self, response: httpx.Response) -> ProviderError:
        """A ProviderError for a non-2xx response, with the provider's own message."""
        detail = response.text[:500]
        try:
            body = response.json()
            if isinstance(body, dict):
                err = body.get("error", body)
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
        return ProviderError(
            f"{self.implementation} API error {response.status_code}: {detail}{hint}",
            provider=self.implementation,
            status=response.status_code,
            retryable=response.status_code in RETRYABLE_STATUSES or response.status_code >= 500,
            retry_after=parse_retry_after(response.headers),
        )

    @abstractmethod
    async def _request(self, texts: list[str]) -> list[list[float]]:
        """Send one request and return its vectors (validated by the caller)."""
