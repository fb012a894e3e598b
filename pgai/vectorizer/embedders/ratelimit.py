"""One adaptive rate limiter per provider endpoint and API key, shared by the whole process.

Every worker coroutine that talks to the same endpoint with the same key goes through the
same :class:`AdaptiveRateLimiter`, so the process paces itself as one client, the way the
provider sees it:

- a 429 pauses *every* coroutine until the provider's ``Retry-After`` (or the reset hints of
  the ``x-ratelimit-*`` headers, or a growing back-off when it sends neither) and halves the
  number of requests allowed in flight (multiplicative decrease);
- each success grows that number back by about one request per round of successes (additive
  increase), up to the configured maximum;
- ``x-ratelimit-remaining-requests``/``-tokens`` with ``x-ratelimit-reset-requests``/``-tokens``
  (OpenAI's durations such as ``1s``, ``6m0s``, ``20ms``) let the limiter wait for the window
  to reset *before* sending a request that would be refused.

A 429 storm therefore costs a pause, not failed rows. The state is plain numbers; waiting uses
primitives of the running event loop, and a limiter first used from a new event loop (a new
``asyncio.run``) starts afresh, since nothing in flight on the old loop will ever finish.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import anyio
import anyio.lowlevel

log = logging.getLogger(__name__)

#: Requests in flight allowed per endpoint and key before any 429 taught us otherwise.
DEFAULT_MAX_CONCURRENCY = 64
#: Longest the limiter pauses on one 429; a longer Retry-After is left to the caller's retry loop.
MAX_PAUSE_SECONDS = 60.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: str | None) -> float | None:
    """Seconds in a rate-limit reset header: ``6m0s``, ``1s``, ``20ms``, ``1h2m3.5s``, a plain
    number of seconds, or an ISO 8601 instant. None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    parts = _DURATION_PART.findall(text)
    if parts and "".join(number + unit for number, unit in parts) == text:
        return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            seconds = float(ms) / 1000
        except ValueError:
            pass
        else:
            if math.isfinite(seconds) and seconds >= 0:
                return seconds
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _parse_count(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(0, int(float(value.strip())))
    except (ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class RateLimitHints:
    """What one response said about the provider's limits (None: not said)."""

    retry_after: float | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None
    reset_tokens: float | None = None
    limit_requests: int | None = None
    limit_tokens: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitHints:
        """Read ``Retry-After`` and the ``x-ratelimit-*`` headers (any case)."""
        return cls(
            retry_after=parse_retry_after(headers),
            remaining_requests=_parse_count(headers.get("x-ratelimit-remaining-requests")),
            remaining_tokens=_parse_count(headers.get("x-ratelimit-remaining-tokens")),
            reset_requests=parse_duration(headers.get("x-ratelimit-reset-requests")),
            reset_tokens=parse_duration(headers.get("x-ratelimit-reset-tokens")),
            limit_requests=_parse_count(headers.get("x-ratelimit-limit-requests")),
            limit_tokens=_parse_count(headers.get("x-ratelimit-limit-tokens")),
        )

    def reset_wait(self) -> float | None:
        """The longest reset among the windows the response says are exhausted (or all resets
        it mentions, when it does not say which one is exhausted)."""
        exhausted = []
        if self.reset_requests is not None and self.remaining_requests in (None, 0):
            exhausted.append(self.reset_requests)
        if self.reset_tokens is not None and self.remaining_tokens in (None, 0):
            exhausted.append(self.reset_tokens)
        if not exhausted:
            exhausted = [r for r in (self.reset_requests, self.reset_tokens) if r is not None]
        return max(exhausted) if exhausted else None


@dataclass
class _Budget:
    """A provider window (requests or tokens): what is left of it, and how fast it refills.

    OpenAI-style windows refill continuously: ``reset`` is the time until the window is full
    again, so with the window's ``limit`` the refill rate is (limit - remaining) / reset. A
    request that needs more than is left waits only until enough has refilled, not until the
    whole window has (waiting for the full reset wastes most of the allowed rate).
    """

    remaining: int | None = None
    reset_at: float = 0.0
    observed_at: float = 0.0
    limit: int | None = None
    #: units per second, when known
    rate: float | None = None

    def update(
        self, remaining: int | None, reset_in: float | None, now: float, limit: int | None = None
    ) -> None:
        if remaining is None:
            return
        self.remaining = remaining
        self.observed_at = now
        self.limit = limit
        # Without a reset time, trust the number for a second: long enough to stop a burst.
        self.reset_at = now + (reset_in if reset_in is not None else 1.0)
        if limit is not None and reset_in and reset_in > 0 and limit > remaining:
            self.rate = (limit - remaining) / reset_in
        else:
            self.rate = None

    def available(self, now: float) -> float | None:
        """What is left now, counting what refilled since the provider said so."""
        if self.remaining is None:
            return None
        if self.rate is None:
            return float(self.remaining)
        refilled = self.remaining + self.rate * (now - self.observed_at)
        return min(refilled, float(self.limit)) if self.limit is not None else refilled

    def wait_for(self, cost: int, now: float) -> float:
        """Seconds to wait before spending ``cost`` of this window (0: go now)."""
        if self.remaining is None:
            return 0.0
        if now >= self.reset_at:
            self.remaining = None
            return 0.0
        available = self.available(now)
        assert available is not None
        if cost <= available:
            return 0.0
        if self.rate:
            # a request larger than the whole window cannot wait for more than the full reset
            return min((cost - available) / self.rate, self.reset_at - now)
        return self.reset_at - now

    def spend(self, cost: int) -> None:
        if self.remaining is not None:
            now = time.monotonic()
            available = self.available(now) or 0.0
            self.remaining = max(0, int(available) - cost)
            self.observed_at = now


class Slot:
    """Permission to send one request; tells the limiter what came back."""

    def __init__(self, limiter: AdaptiveRateLimiter, epoch: int) -> None:
        self.limiter = limiter
        self.epoch = epoch
        self.outcome_reported = False

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn the provider's remaining budget from a response's headers."""
        self.limiter._observe(RateLimitHints.from_headers(headers))

    def succeeded(self) -> None:
        """The request went through: grow the allowed concurrency (additive increase)."""
        if not self.outcome_reported:
            self.outcome_reported = True
            self.limiter._on_success()

    def rate_limited(self, headers: Mapping[str, str] | None = None) -> float:
        """The provider answered 429: pause everyone and halve the concurrency (once per
        congestion episode). Returns how long the limiter pauses."""
        self.outcome_reported = True
        hints = RateLimitHints.from_headers(headers or {})
        return self.limiter._on_rate_limited(self, hints)


class AdaptiveRateLimiter:
    """AIMD pacing of the requests to one endpoint with one key. Get one with
    :func:`rate_limiter_for`; use ``async with limiter.slot(tokens) as slot``."""

    def __init__(
        self,
        name: str,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        min_concurrency: int = 1,
        base_pause: float = 1.0,
        max_pause: float = MAX_PAUSE_SECONDS,
    ) -> None:
        if not 1 <= min_concurrency <= max_concurrency:
            raise ValueError("need 1 <= min_concurrency <= max_concurrency")
        self.name = name
        self.max_concurrency = max_concurrency
        self.min_concurrency = min_concurrency
        self.base_pause = base_pause
        self.max_pause = max_pause
        self._loop_token: object | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self.concurrency = float(self.max_concurrency)
        self.in_flight = 0
        self.paused_until = 0.0
        self.rate_limited_count = 0
        self.decreases = 0
        self._epoch = 0
        self._consecutive_429 = 0
        self._requests = _Budget()
        self._tokens = _Budget()
        self._waiters: list[anyio.Event] = []

    # -- state ----------------------------------------------------------------------------------
    @property
    def allowed_in_flight(self) -> int:
        """Requests that may be in flight at once right now."""
        return max(self.min_concurrency, math.floor(self.concurrency))

    def _bind_to_running_loop(self) -> None:
        token = anyio.lowlevel.current_token()
        if token != self._loop_token:
            # Slots and waiters of another event loop can never be released: start afresh.
            self._loop_token = token
            self._reset_state()

    def _wait_before_sending(self, tokens: int) -> float:
        now = time.monotonic()
        return max(
            self.paused_until - now,
            self._requests.wait_for(1, now),
            self._tokens.wait_for(tokens, now),
            0.0,
        )

    # -- acquiring ------------------------------------------------------------------------------
    @asynccontextmanager
    async def slot(self, tokens: int = 0) -> AsyncIterator[Slot]:
        """Wait until a request of ``tokens`` may be sent, and hold a slot while it is."""
        self._bind_to_running_loop()
        await self._acquire(tokens)
        slot = Slot(self, self._epoch)
        try:
            yield slot
        finally:
            self.in_flight -= 1
            self._wake()

    async def _acquire(self, tokens: int) -> None:
        while True:
            delay = self._wait_before_sending(tokens)
            if delay > 0:
                await anyio.sleep(delay)
                continue
            if self.in_flight < self.allowed_in_flight:
                break
            event = anyio.Event()
            self._waiters.append(event)
            try:
                await event.wait()
            finally:
                if event in self._waiters:
                    self._waiters.remove(event)
        self.in_flight += 1
        self._requests.spend(1)
        self._tokens.spend(tokens)

    def _wake(self) -> None:
        free = self.allowed_in_flight - self.in_flight
        while free > 0 and self._waiters:
            self._waiters.pop(0).set()
            free -= 1

    # -- learning -------------------------------------------------------------------------------
    def _observe(self, hints: RateLimitHints) -> None:
        now = time.monotonic()
        self._requests.update(
            hints.remaining_requests, hints.reset_requests, now, hints.limit_requests
        )
        self._tokens.update(hints.remaining_tokens, hints.reset_tokens, now, hints.limit_tokens)

    def _on_success(self) -> None:
        self._consecutive_429 = 0
        if self.concurrency < self.max_concurrency:
            before = self.allowed_in_flight
            self.concurrency = min(
                float(self.max_concurrency), self.concurrency + 1.0 / self.concurrency
            )
            if self.allowed_in_flight > before:
                self._wake()

    def _on_rate_limited(self, slot: Slot, hints: RateLimitHints) -> float:
        self._observe(hints)
        self.rate_limited_count += 1
        pause = hints.retry_after
        if pause is None:
            pause = hints.reset_wait()
        if pause is None:
            pause = self.base_pause * 2.0**self._consecutive_429
        pause = min(pause, self.max_pause)
        self._consecutive_429 += 1
        self.paused_until = max(self.paused_until, time.monotonic() + pause)
        if slot.epoch == self._epoch:
            # The first 429 of the requests sent at this concurrency: slow down once. Others
            # of the same round were sent before we reacted and must not halve it again.
            self._epoch += 1
            self.decreases += 1
            self.concurrency = max(float(self.min_concurrency), self.concurrency / 2)
            log.warning(
                "rate limited by %s: pausing %.2fs, now at most %d requests in flight",
                self.name,
                pause,
                self.allowed_in_flight,
            )
        return pause


_registry: dict[tuple[str, str, str], AdaptiveRateLimiter] = {}
_registry_lock = threading.Lock()


def _key_fingerprint(api_key: str | None) -> str:
    # The registry never holds the key itself, only a digest that tells keys apart.
    if not api_key:
        return "-"
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]


def rate_limiter_for(
    provider: str,
    endpoint: str,
    api_key: str | None,
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
) -> AdaptiveRateLimiter:
    """The process-wide limiter of ``provider`` at ``endpoint`` with ``api_key``."""
    key = (provider, endpoint, _key_fingerprint(api_key))
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = AdaptiveRateLimiter(
                f"{provider} at {endpoint}", max_concurrency=max_concurrency
            )
            _registry[key] = limiter
        return limiter


def reset_rate_limiters() -> None:
    """Forget every limiter (tests; a process that changes its mind about limits)."""
    with _registry_lock:
        _registry.clear()
