"""The shared adaptive rate limiter: header parsing, AIMD, pausing together, and a worker that
drains its queue under a token-rate limit without failing a row."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import anyio
import asyncpg
import httpx
import pytest

from pgai.vectorizer import Worker
from pgai.vectorizer.config import OpenAIEmbedding
from pgai.vectorizer.embedders.base import RetryPolicy
from pgai.vectorizer.embedders.openai import OpenAIEmbedder
from pgai.vectorizer.embedders.ratelimit import (
    AdaptiveRateLimiter,
    RateLimitHints,
    _registry,
    parse_duration,
    parse_retry_after,
    rate_limiter_for,
    reset_rate_limiters,
)
from tests.fake_provider import FakeProvider, fake_vector

DIMS = 8


@pytest.fixture(autouse=True)
def fresh_limiters() -> Iterator[None]:
    reset_rate_limiters()
    yield
    reset_rate_limiters()


# -- header parsing -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("2m30s", 150.0),
        ("0.5", 0.5),
        ("17", 17.0),
    ],
)
def test_reset_durations_in_openai_format_are_read_as_seconds(value: str, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "5 parsecs", "-3", "nan", "1x"])
def test_unreadable_reset_durations_are_ignored(value: str | None) -> None:
    assert parse_duration(value) is None


def test_a_reset_given_as_an_instant_counts_from_now() -> None:
    later = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    assert parse_duration(later) == pytest.approx(30, abs=1)


def test_retry_after_ms_wins_over_retry_after() -> None:
    headers = httpx.Headers({"Retry-After": "5", "retry-after-ms": "250"})
    assert parse_retry_after(headers) == pytest.approx(0.25)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after(httpx.Headers({"retry-after": "2"})) == 2.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    assert parse_retry_after(httpx.Headers({"retry-after": when})) == pytest.approx(20, abs=1.5)
    assert parse_retry_after(httpx.Headers({"retry-after": "whenever"})) is None
    assert parse_retry_after(httpx.Headers({})) is None


def test_rate_limit_headers_are_read_in_any_case() -> None:
    hints = RateLimitHints.from_headers(
        httpx.Headers(
            {
                "X-RateLimit-Remaining-Requests": "59",
                "x-ratelimit-remaining-tokens": "149984",
                "x-ratelimit-reset-requests": "1s",
                "X-RATELIMIT-RESET-TOKENS": "6m0s",
                "retry-after": "3",
            }
        )
    )
    assert hints == RateLimitHints(
        retry_after=3.0,
        remaining_requests=59,
        remaining_tokens=149984,
        reset_requests=1.0,
        reset_tokens=360.0,
    )


def test_the_reset_hint_is_the_one_of_the_exhausted_window() -> None:
    hints = RateLimitHints(
        remaining_requests=10, remaining_tokens=0, reset_requests=1.0, reset_tokens=20.0
    )
    assert hints.reset_wait() == 20.0
    hints = RateLimitHints(
        remaining_requests=0, remaining_tokens=500, reset_requests=2.0, reset_tokens=20.0
    )
    assert hints.reset_wait() == 2.0
    assert RateLimitHints().reset_wait() is None


# -- AIMD ---------------------------------------------------------------------------------------
async def test_a_429_halves_the_allowed_concurrency() -> None:
    limiter = AdaptiveRateLimiter("test", max_concurrency=8, base_pause=0.001)
    async with limiter.slot() as slot:
        slot.rate_limited({"retry-after": "0"})
    assert limiter.allowed_in_flight == 4
    async with limiter.slot() as slot:
        slot.rate_limited({"retry-after": "0"})
    assert limiter.allowed_in_flight == 2


async def test_429s_of_requests_sent_together_halve_the_concurrency_once() -> None:
    limiter = AdaptiveRateLimiter("test", max_concurrency=8)
    async with limiter.slot() as first, limiter.slot() as second, limiter.slot() as third:
        for slot in (first, second, third):
            slot.rate_limited({"retry-after": "0"})
    assert limiter.allowed_in_flight == 4
    assert limiter.decreases == 1
    assert limiter.rate_limited_count == 3


async def test_concurrency_never_drops_below_the_minimum() -> None:
    limiter = AdaptiveRateLimiter("test", max_concurrency=4)
    for _ in range(6):
        async with limiter.slot() as slot:
            slot.rate_limited({"retry-after": "0"})
    assert limiter.allowed_in_flight == 1


async def test_successes_grow_the_concurrency_back_additively_up_to_the_maximum() -> None:
    limiter = AdaptiveRateLimiter("test", max_concurrency=6)
    for _ in range(3):
        async with limiter.slot() as slot:
            slot.rate_limited({"retry-after": "0"})
    assert limiter.allowed_in_flight == 1
    seen = []
    for _ in range(30):
        async with limiter.slot() as slot:
            slot.succeeded()
        seen.append(limiter.allowed_in_flight)
    # about one more request in flight per round of successes: 1, 2, 2, 3, 3, 3, ...
    assert seen[:4] == [2, 2, 2, 3]
    assert seen == sorted(seen)
    assert seen[-1] == 6
    assert limiter.concurrency == 6


async def test_requests_in_flight_are_bounded_by_the_allowed_concurrency() -> None:
    limiter = AdaptiveRateLimiter("test", max_concurrency=8)
    async with limiter.slot() as slot:
        slot.rate_limited({"retry-after": "0"})
    async with limiter.slot() as slot:
        slot.rate_limited({"retry-after": "0"})
    assert limiter.allowed_in_flight == 2
    peak = 0
    active = 0

    async def request() -> None:
        nonlocal peak, active
        async with limiter.slot():
            active += 1
            peak = max(peak, active)
            await anyio.sleep(0.01)
            active -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(request)
    assert peak == 2
    assert limiter.in_flight == 0


async def test_a_429_pauses_every_waiting_request_for_retry_after() -> None:
    limiter = AdaptiveRateLimiter("test", max_concurrency=8)
    async with limiter.slot() as slot:
        pause = slot.rate_limited({"retry-after-ms": "200"})
    assert pause == pytest.approx(0.2)
    started = time.monotonic()
    sent_at: list[float] = []

    async def request() -> None:
        async with limiter.slot():
            sent_at.append(time.monotonic() - started)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(request)
    assert len(sent_at) == 4
    assert min(sent_at) >= 0.18


async def test_without_retry_after_the_pause_grows_with_each_429_in_a_row() -> None:
    limiter = AdaptiveRateLimiter("test", max_concurrency=4, base_pause=0.001)
    pauses = []
    for _ in range(3):
        async with limiter.slot() as slot:
            pauses.append(slot.rate_limited({}))
    assert pauses == pytest.approx([0.001, 0.002, 0.004])
    async with limiter.slot() as slot:
        slot.succeeded()
    async with limiter.slot() as slot:
        assert slot.rate_limited({}) == pytest.approx(0.001)


async def test_a_429_with_only_reset_headers_pauses_until_the_reset() -> None:
    limiter = AdaptiveRateLimiter("test", max_concurrency=4)
    async with limiter.slot() as slot:
        pause = slot.rate_limited(
            {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "150ms"}
        )
    assert pause == pytest.approx(0.15)


async def test_an_exhausted_token_budget_holds_a_request_until_the_window_resets() -> None:
    limiter = AdaptiveRateLimiter("test", max_concurrency=4)
    async with limiter.slot(10) as slot:
        slot.observe({"x-ratelimit-remaining-tokens": "100", "x-ratelimit-reset-tokens": "200ms"})
        slot.succeeded()
    started = time.monotonic()
    async with limiter.slot(60):
        pass  # fits what is left: goes at once
    assert time.monotonic() - started < 0.1
    async with limiter.slot(60):
        pass  # 40 left: waits for the reset
    assert time.monotonic() - started >= 0.18


async def test_no_requests_left_in_the_window_holds_the_next_one() -> None:
    limiter = AdaptiveRateLimiter("test", max_concurrency=4)
    async with limiter.slot() as slot:
        slot.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "150ms"})
    started = time.monotonic()
    async with limiter.slot():
        pass
    assert time.monotonic() - started >= 0.13


def test_one_limiter_per_provider_endpoint_and_key_without_keeping_the_key() -> None:
    a = rate_limiter_for("openai", "https://api.example/v1/embeddings", "sk-secret-1")
    assert rate_limiter_for("openai", "https://api.example/v1/embeddings", "sk-secret-1") is a
    assert rate_limiter_for("openai", "https://api.example/v1/embeddings", "sk-secret-2") is not a
    assert rate_limiter_for("openai", "https://other.example/v1/embeddings", "sk-secret-1") is not a
    assert rate_limiter_for("voyageai", "https://api.example/v1/embeddings", "sk-secret-1") is not a
    assert "sk-secret-1" not in repr(list(_registry))


def test_a_new_event_loop_starts_with_fresh_limiter_state() -> None:
    limiter = AdaptiveRateLimiter("test", max_concurrency=8)

    async def rate_limited_then_leak_a_slot() -> None:
        async with limiter.slot() as slot:
            slot.rate_limited({"retry-after": "0"})
        await limiter._acquire(0)  # a slot held by a loop that then goes away

    anyio.run(rate_limited_then_leak_a_slot)
    assert limiter.in_flight == 1

    async def use() -> None:
        async with limiter.slot():
            assert limiter.in_flight == 1

    anyio.run(use)
    assert limiter.in_flight == 0
    assert limiter.allowed_in_flight == 8


# -- through the embedder -----------------------------------------------------------------------
async def test_embedders_of_one_endpoint_and_key_pause_together_on_a_429() -> None:
    with FakeProvider(dimensions=DIMS) as provider:
        provider.fail_next(429, headers={"retry-after-ms": "300"})
        sent: list[float] = []
        provider.on_request = lambda request: sent.append(time.monotonic())
        config = OpenAIEmbedding(
            implementation="openai",
            model="text-embedding-3-small",
            dimensions=DIMS,
            base_url=provider.url,
        )
        async with httpx.AsyncClient() as client:
            retry = RetryPolicy(attempts=3, base_delay=0.01)
            first = OpenAIEmbedder(config, api_key="sk-a", client=client, retry=retry)
            second = OpenAIEmbedder(config, api_key="sk-a", client=client, retry=retry)
            assert first.rate_limiter is second.rate_limiter
            results: dict[str, list[list[float]]] = {}

            async def embed_second_later() -> None:
                await anyio.sleep(0.1)  # the first one's 429 has arrived by then
                results["second"] = await second.embed(["b"])

            async def embed_first() -> None:
                results["first"] = await first.embed(["a"])

            async with anyio.create_task_group() as tg:
                tg.start_soon(embed_first)
                tg.start_soon(embed_second_later)
    assert results == {"first": [fake_vector("a", DIMS)], "second": [fake_vector("b", DIMS)]}
    assert len(sent) == 3
    # nothing reached the provider during the pause the 429 asked for
    assert all(t - sent[0] >= 0.28 for t in sent[1:])


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")


async def test_a_worker_under_a_token_rate_limit_embeds_every_row_and_fails_none(
    db_url: str, conn: asyncpg.Connection, api_key: None
) -> None:
    with FakeProvider(dimensions=DIMS) as provider:
        await conn.execute("CREATE TABLE doc (id int PRIMARY KEY, body text)")
        await conn.execute(
            "INSERT INTO doc SELECT i, repeat('token' || i || ' ', 20) "
            "FROM generate_series(1, 120) i"
        )
        await conn.fetchval(
            """
            SELECT ai.create_vectorizer('doc'::regclass,
                loading => ai.loading_column('body'),
                embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
                chunking => ai.chunking_none(),
                processing => ai.processing_default(batch_size => 5, concurrency => 6))
            """,
            DIMS,
            provider.url,
        )
        texts = [r[0] for r in await conn.fetch("SELECT body FROM doc")]
        total = FakeProvider.estimate_tokens(texts)
        # about four windows' worth of tokens: the job cannot finish without being paced
        provider.limit_tokens_per_window(total // 4 + 1, window_seconds=0.5)
        provider.latency = 0.02  # long enough for the coroutines' requests to overlap
        worker = Worker(
            db_url,
            once=True,
            provider_retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05),
            retry_backoff=timedelta(hours=1),
        )
        assert await worker.run() is None
        assert await conn.fetchval("SELECT count(DISTINCT id) FROM doc_embedding_store") == 120
        assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 0
        assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_failed_1") == 0
        assert await conn.fetchval("SELECT count(*) FROM ai.vectorizer_errors") == 0
        stored = await conn.fetchval("SELECT embedding::text FROM doc_embedding_store WHERE id = 9")
        expected = fake_vector("token9 " * 20, DIMS)
        assert [float(x) for x in stored.strip("[]").split(",")] == pytest.approx(expected)
        requests = provider.embedding_requests()
        # paced, not hammering: most requests went through the first time
        assert provider.rate_limited_responses < len(requests) / 2
        assert provider.max_in_flight > 1


def test_a_refilling_window_waits_only_until_enough_has_refilled() -> None:
    from pgai.vectorizer.embedders.ratelimit import _Budget

    budget = _Budget()
    # 60,000 tokens a minute, all spent, full again in 60 s: 1,000 tokens come back a second
    budget.update(remaining=0, reset_in=60.0, now=100.0, limit=60_000)
    assert budget.wait_for(500, now=100.0) == pytest.approx(0.5)
    assert budget.wait_for(500, now=100.5) == pytest.approx(0.0)
    # more than the whole window: wait for the full reset, not longer
    assert budget.wait_for(120_000, now=100.0) == pytest.approx(60.0)
    # without the window's limit, the reset time is all there is to go by
    blind = _Budget()
    blind.update(remaining=0, reset_in=60.0, now=100.0)
    assert blind.wait_for(500, now=100.0) == pytest.approx(60.0)
