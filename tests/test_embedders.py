"""The embedding providers against a local server speaking their wire formats, over real HTTP:
batching, retries, failure modes, response validation, and each provider's request format."""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from pgai.errors import ConfigurationError
from pgai.vectorizer.config import (
    LiteLLMEmbedding,
    OllamaEmbedding,
    OpenAIEmbedding,
    SentenceTransformersEmbedding,
    VoyageAIEmbedding,
    parse_vectorizer,
)
from pgai.vectorizer.embedders import make_embedder
from pgai.vectorizer.embedders.base import Embedder, ProviderError, RetryPolicy
from pgai.vectorizer.embedders.litellm import litellm_limits, litellm_provider
from pgai.vectorizer.embedders.ollama import OllamaEmbedder, normalize_ollama_host
from pgai.vectorizer.embedders.openai import MAX_REQUEST_TOKENS, OpenAIEmbedder
from pgai.vectorizer.embedders.ratelimit import reset_rate_limiters
from pgai.vectorizer.embedders.voyageai import (
    VoyageAIEmbedder,
    decode_base64_embedding,
    voyage_tokens_per_request,
)
from pgai.vectorizer.tokens import encoding_for_model
from tests.fake_provider import FakeProvider, fake_vector

DIMS = 8
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture(autouse=True)
def fresh_limiters() -> Iterator[None]:
    reset_rate_limiters()
    yield
    reset_rate_limiters()


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(dimensions=DIMS) as p:
        yield p


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as c:
        yield c


def openai(
    provider: FakeProvider,
    client: httpx.AsyncClient,
    model: str = "text-embedding-3-small",
    retry: RetryPolicy = FAST_RETRY,
    **config: Any,
) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        OpenAIEmbedding(
            implementation="openai",
            model=model,
            dimensions=DIMS,
            base_url=provider.url,
            **config,
        ),
        api_key="sk-test-key",
        client=client,
        retry=retry,
    )


def voyage(
    provider: FakeProvider,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    **config: Any,
) -> VoyageAIEmbedder:
    monkeypatch.setenv("VOYAGE_API_BASE", provider.url)
    settings: dict[str, Any] = {"model": "voyage-3.5", "dimensions": DIMS, **config}
    return VoyageAIEmbedder(
        VoyageAIEmbedding(implementation="voyageai", **settings),
        api_key="pa-test-key",
        client=client,
        retry=FAST_RETRY,
    )


def ollama(provider: FakeProvider, client: httpx.AsyncClient, **config: Any) -> OllamaEmbedder:
    settings: dict[str, Any] = {
        "model": "nomic-embed-text",
        "dimensions": DIMS,
        "base_url": provider.base,
        **config,
    }
    return OllamaEmbedder(
        OllamaEmbedding(implementation="ollama", **settings), client=client, retry=FAST_RETRY
    )


def request_sizes(provider: FakeProvider) -> list[int]:
    return [len(r.body["input"]) for r in provider.embedding_requests()]


# -- batching -----------------------------------------------------------------------------------
async def test_2048_inputs_go_in_one_openai_request_and_2049_in_two(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    embedder = openai(provider, client)
    texts = [f"text {i}" for i in range(2049)]
    assert len(await embedder.embed(texts[:2048])) == 2048
    assert request_sizes(provider) == [2048]
    vectors = await embedder.embed(texts)
    assert request_sizes(provider) == [2048, 2048, 1]
    assert vectors[2048] == fake_vector("text 2048", DIMS)
    assert vectors[0] == fake_vector("text 0", DIMS)


async def test_voyage_sends_at_most_128_inputs_per_request(
    provider: FakeProvider, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = voyage(provider, client, monkeypatch)
    await embedder.embed([f"t{i}" for i in range(257)])
    assert sorted(request_sizes(provider)) == [1, 128, 128]


async def test_ollama_batch_size_comes_from_the_environment(
    provider: FakeProvider, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGAI_VECTORIZER_OLLAMA_MAX_CHUNKS_PER_BATCH", "3")
    embedder = ollama(provider, client)
    vectors = await embedder.embed([f"t{i}" for i in range(7)])
    assert sorted(request_sizes(provider)) == [1, 3, 3]
    assert vectors == [fake_vector(f"t{i}", DIMS) for i in range(7)]
    monkeypatch.delenv("PGAI_VECTORIZER_OLLAMA_MAX_CHUNKS_PER_BATCH")
    assert ollama(provider, client).max_inputs_per_request == 2048


def test_an_invalid_ollama_batch_size_is_a_configuration_error(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGAI_VECTORIZER_OLLAMA_MAX_CHUNKS_PER_BATCH", "lots")
    with pytest.raises(ConfigurationError, match="PGAI_VECTORIZER_OLLAMA_MAX_CHUNKS_PER_BATCH"):
        ollama(provider, httpx.AsyncClient())


def _real_tokens(text: str) -> int:
    encoding = encoding_for_model("text-embedding-3-small")
    assert encoding is not None
    return len(encoding.encode(text, disallowed_special=()))


def _byte_estimate(text: str) -> float:
    return 0.25 * len(text.encode("utf-8"))


@pytest.mark.parametrize(
    ("text", "binding"),
    [
        # CJK: 3 bytes a character, but one or more tokens each: real tokens bind
        pytest.param("鬱" * 2000, "real", id="cjk"),
        # long English words: few tokens for many bytes: OpenAI's byte estimate binds
        pytest.param("internationalization " * 300, "estimate", id="long-words"),
    ],
)
async def test_openai_requests_stay_under_300k_tokens_counted_both_ways(
    provider: FakeProvider, client: httpx.AsyncClient, text: str, binding: str
) -> None:
    real, estimate = _real_tokens(text), _byte_estimate(text)
    assert (real > estimate) == (binding == "real")
    count = math.ceil(2.5 * MAX_REQUEST_TOKENS / max(real, estimate))
    texts = [text + str(i) for i in range(count)]
    embedder = openai(provider, client)
    vectors = await embedder.embed(texts)
    assert vectors[-1] == fake_vector(texts[-1], DIMS)
    # requests run concurrently: put them back in the order of their inputs
    position = {t: i for i, t in enumerate(texts)}
    requests = sorted(
        (r.body["input"] for r in provider.embedding_requests()), key=lambda s: position[s[0]]
    )
    assert len(requests) == 3
    for sent in requests:
        assert sum(_real_tokens(t) for t in sent) <= MAX_REQUEST_TOKENS
        assert sum(_byte_estimate(t) for t in sent) <= MAX_REQUEST_TOKENS
    # each request is full: one more input would have gone over the binding count
    cost = _real_tokens if binding == "real" else _byte_estimate
    for sent, following in itertools.pairwise(requests):
        assert sum(cost(t) for t in sent) + cost(following[0]) > MAX_REQUEST_TOKENS


async def test_openai_splits_a_few_requests_worth_by_bytes_without_tokenizing(
    provider: FakeProvider, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_tokenizer(model: str) -> None:
        raise AssertionError(f"the {model} tokenizer was loaded")

    monkeypatch.setattr("pgai.vectorizer.embedders.openai.encoding_for_model", no_tokenizer)
    # 2.5 requests' worth of bytes (a byte is at most a token), English-like text
    texts = [f"{i} " + "a few plain words " * 55 for i in range(760)]
    assert sum(map(len, texts)) > 2.5 * MAX_REQUEST_TOKENS
    vectors = await openai(provider, client).embed(texts)
    assert vectors == [fake_vector(t, DIMS) for t in texts]
    sent = [r.body["input"] for r in provider.embedding_requests()]
    assert len(sent) == 3
    assert all(sum(len(t) for t in inputs) <= MAX_REQUEST_TOKENS for inputs in sent)


async def test_voyage_requests_stay_under_the_model_token_cap(
    provider: FakeProvider, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = voyage(provider, client, monkeypatch, model="voyage-code-3")
    assert embedder.max_tokens_per_request == 120_000
    texts = ["日本語のテキスト" * 1000 for _ in range(20)]  # 16k estimated tokens each
    await embedder.embed(texts)
    sizes = request_sizes(provider)
    assert sum(sizes) == 20
    assert max(sizes) == 7  # 7 * 16k fits in 120k, 8 do not


def test_voyage_token_caps_follow_the_model() -> None:
    assert voyage_tokens_per_request("voyage-3.5-lite") == 1_000_000
    assert voyage_tokens_per_request("voyage-3-lite") == 1_000_000
    assert voyage_tokens_per_request("voyage-3.5") == 320_000
    assert voyage_tokens_per_request("voyage-3") == 320_000
    assert voyage_tokens_per_request("voyage-2") == 320_000
    assert voyage_tokens_per_request("voyage-3-large") == 120_000
    assert voyage_tokens_per_request("voyage-law-2") == 120_000


async def test_an_input_over_the_request_token_limit_fails_before_any_request(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    # an OpenAI-compatible server's model: no tokenizer known, so no truncation either
    embedder = openai(provider, client, model="local-llama-embed")
    with pytest.raises(ProviderError, match=r"input 1 has 300001 tokens.*lower chunk_size"):
        await embedder.embed(["fine", "x" * (4 * MAX_REQUEST_TOKENS + 4)])
    assert provider.requests == []


async def test_openai_truncates_inputs_over_8191_tokens_and_only_what_is_sent(
    provider: FakeProvider, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    text = " ".join(f"word{i}" for i in range(5000))
    assert _real_tokens(text) > 8191
    embedder = openai(provider, client)
    [vector] = await embedder.embed([text])
    [sent] = provider.embedded_texts()
    assert _real_tokens(sent) == 8191
    assert text.startswith(sent)
    assert vector == fake_vector(sent, DIMS)
    assert f"chunk truncated from {_real_tokens(text)} to 8191 tokens" in caplog.text


# -- retries and failures -----------------------------------------------------------------------
async def test_a_429_with_retry_after_is_waited_out_then_succeeds(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    provider.fail_next(429, times=2, headers={"retry-after": "0.15"})
    started = time.monotonic()
    vectors = await openai(provider, client).embed(["a", "b"])
    assert vectors == [fake_vector("a", DIMS), fake_vector("b", DIMS)]
    assert len(provider.requests) == 3
    assert time.monotonic() - started >= 0.28


async def test_429s_do_not_use_up_the_attempts_of_a_request(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    provider.fail_next(429, times=5, headers={"retry-after": "0"})
    embedder = openai(provider, client, retry=RetryPolicy(attempts=2, base_delay=0.01))
    assert await embedder.embed(["a"]) == [fake_vector("a", DIMS)]
    assert len(provider.requests) == 6


async def test_endless_429s_end_in_a_rate_limit_error_once_patience_runs_out(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    provider.fail_next(429, times=100, headers={"retry-after": "0"})
    retry = RetryPolicy(attempts=2, base_delay=0.01, rate_limit_attempts=3)
    with pytest.raises(ProviderError) as error:
        await openai(provider, client, retry=retry).embed(["a"])
    assert error.value.rate_limited
    assert error.value.retryable
    assert len(provider.requests) == 4


async def test_500s_are_retried_then_succeed(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    provider.fail_next(500, times=2)
    assert await openai(provider, client).embed(["a"]) == [fake_vector("a", DIMS)]
    assert len(provider.requests) == 3


async def test_500s_past_the_attempts_are_a_retryable_provider_error(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    provider.fail_next(503, times=10)
    with pytest.raises(ProviderError, match="openai API error 503: scripted failure") as error:
        await openai(provider, client).embed(["a"])
    assert error.value.status == 503
    assert error.value.retryable
    assert len(provider.requests) == FAST_RETRY.attempts


async def test_401_is_a_clear_error_that_is_not_retried(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    provider.fail_next(
        401,
        times=10,
        body={"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}},
    )
    with pytest.raises(ProviderError) as error:
        await openai(provider, client).embed(["a"])
    assert str(error.value) == (
        "openai API error 401: Incorrect API key provided (check the API key)"
    )
    assert "sk-test-key" not in str(error.value)
    assert not error.value.retryable
    assert len(provider.requests) == 1


@pytest.mark.parametrize("status", [400, 403, 404])
async def test_client_errors_are_not_retried(
    provider: FakeProvider, client: httpx.AsyncClient, status: int
) -> None:
    provider.fail_next(status, times=10)
    with pytest.raises(ProviderError, match=f"API error {status}"):
        await openai(provider, client).embed(["a"])
    assert len(provider.requests) == 1


async def test_a_malformed_json_body_is_a_provider_error(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    provider.fail_next(200, times=10, body=b"{not json")
    with pytest.raises(ProviderError, match=r"not an embeddings list.*not json"):
        await openai(provider, client).embed(["a"])


async def test_a_wrong_vector_count_is_a_provider_error(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    body = {"data": [{"index": 0, "embedding": [0.1] * DIMS}]}
    provider.fail_next(200, times=10, body=body)
    with pytest.raises(ProviderError, match="returned 1 embeddings for 2 inputs"):
        await openai(provider, client).embed(["a", "b"])


async def test_wrong_dimensions_are_a_provider_error_that_says_what_to_fix(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    provider.fail_next(200, times=10, body={"data": [{"index": 0, "embedding": [0.1] * 5}]})
    with pytest.raises(ProviderError, match=r"embedding of 5 dimensions .* expects 8: fix"):
        await openai(provider, client).embed(["a"])


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b'"0.5"', b"null", b"true"])
async def test_non_finite_or_non_numeric_values_are_a_provider_error(
    provider: FakeProvider, client: httpx.AsyncClient, value: bytes
) -> None:
    body = b'{"data": [{"index": 0, "embedding": [0.1, %s, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]}]}'
    provider.fail_next(200, times=10, body=body % value)
    # NaN and Infinity are not JSON at all: the strict parser rejects the body, quoting it
    with pytest.raises(
        ProviderError,
        match=r"non-finite or non-numeric value|not an embeddings list: .*(NaN|Infinity)",
    ):
        await openai(provider, client).embed(["a"])


async def test_a_hanging_provider_times_out_as_a_retryable_error(
    provider: FakeProvider,
) -> None:
    provider.latency = 1.0
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.2)) as short:
        retry = RetryPolicy(attempts=2, base_delay=0.01)
        started = time.monotonic()
        with pytest.raises(ProviderError, match="timed out") as error:
            await openai(provider, short, retry=retry).embed(["a"])
    assert error.value.retryable
    assert len(provider.requests) == 2
    assert time.monotonic() - started < 0.9


async def test_an_unreachable_provider_is_a_retryable_error_naming_the_url(
    client: httpx.AsyncClient,
) -> None:
    with FakeProvider() as gone:
        url = gone.url
    embedder = OpenAIEmbedder(
        OpenAIEmbedding(implementation="openai", model="m", dimensions=DIMS, base_url=url),
        api_key="k",
        client=client,
        retry=RetryPolicy(attempts=1),
    )
    with pytest.raises(ProviderError, match=f"could not reach the openai API at {url}") as error:
        await embedder.embed(["a"])
    assert error.value.retryable


# -- results ------------------------------------------------------------------------------------
UNUSUAL_TEXTS = ["", "héllo wörld", "日本語のテキスト", "🙂👍🏽", "a\x00b", "\n\t ", "Ω" * 3, "x"]


@pytest.mark.parametrize("name", ["openai", "voyage", "ollama"])
async def test_unicode_and_empty_strings_come_back_in_order(
    provider: FakeProvider,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    embedder: Embedder = {
        "openai": lambda: openai(provider, client),
        "voyage": lambda: voyage(provider, client, monkeypatch),
        "ollama": lambda: ollama(provider, client),
    }[name]()
    vectors = await embedder.embed(UNUSUAL_TEXTS)
    assert provider.embedded_texts() == UNUSUAL_TEXTS
    assert vectors == [fake_vector(t, DIMS) for t in UNUSUAL_TEXTS]


async def test_batched_results_equal_one_by_one_results(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    texts = [f"document number {i} " * (i % 7 + 1) for i in range(60)] + UNUSUAL_TEXTS
    embedder = openai(provider, client)
    embedder.max_inputs_per_request = 7  # many concurrent requests
    provider.latency = 0.005
    batched = await embedder.embed(texts)
    assert len(provider.embedding_requests()) == math.ceil(len(texts) / 7)
    one_by_one = [(await embedder.embed([t]))[0] for t in texts]
    assert batched == one_by_one


async def test_nothing_to_embed_sends_nothing(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    assert await openai(provider, client).embed([]) == []
    assert provider.requests == []


# -- Voyage -------------------------------------------------------------------------------------
async def test_voyage_request_format(
    provider: FakeProvider, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = voyage(provider, client, monkeypatch, input_type="query")
    await embedder.embed(["q"])
    [request] = provider.requests
    assert request.path == "/v1/embeddings"
    assert request.headers["Authorization"] == "Bearer pa-test-key"
    assert request.body == {
        "input": ["q"],
        "model": "voyage-3.5",
        "input_type": "query",
        "truncation": True,
    }


async def test_voyage_sends_a_null_input_type_and_forwards_output_options(
    provider: FakeProvider, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = voyage(
        provider, client, monkeypatch, input_type=None, output_dimension=DIMS, output_dtype="float"
    )
    await embedder.embed(["d"])
    body = provider.requests[0].body
    assert body["input_type"] is None
    assert body["output_dimension"] == DIMS
    assert body["output_dtype"] == "float"


async def test_voyage_base64_embeddings_are_decoded_as_little_endian_float32(
    provider: FakeProvider, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.voyage_base64 = True
    vectors = await voyage(provider, client, monkeypatch).embed(["a", "b"])
    assert vectors == [fake_vector("a", DIMS), fake_vector("b", DIMS)]


def test_base64_embeddings_of_integer_types_decode_to_their_values() -> None:
    assert decode_base64_embedding("/wB/gA==", "int8") == [-1.0, 0.0, 127.0, -128.0]
    assert decode_base64_embedding("/wB/gA==", "ubinary") == [255.0, 0.0, 127.0, 128.0]
    with pytest.raises(ValueError, match="not a whole number"):
        decode_base64_embedding("/wB/", "float")


async def test_voyage_error_details_are_shown(
    provider: FakeProvider, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.fail_next(400, body={"detail": "Model voyage-9 is not supported."})
    with pytest.raises(ProviderError, match="voyageai API error 400: Model voyage-9 is not"):
        await voyage(provider, client, monkeypatch).embed(["a"])


# -- Ollama -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "normalized"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("example.com", "http://example.com:11434"),
        ("example.com:5678", "http://example.com:5678"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("https://example.com:8443/", "https://example.com:8443"),
        ("http://example.com/ollama/", "http://example.com:80/ollama"),
        ("example.com/path/to/api", "http://example.com:11434/path/to/api"),
        ("0.0.0.0", "http://0.0.0.0:11434"),
        (":9999", "http://127.0.0.1:9999"),
        ("[::1]:1234", "http://[::1]:1234"),
        ("  localhost  ", "http://localhost:11434"),
    ],
)
def test_ollama_hosts_are_normalised(host: str | None, normalized: str) -> None:
    assert normalize_ollama_host(host) == normalized


def test_ollama_host_comes_from_base_url_then_ollama_host(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "ollama.internal")
    client = httpx.AsyncClient()
    assert ollama(provider, client).url == f"{provider.base}/api/embed"
    assert ollama(provider, client, base_url=None).url == "http://ollama.internal:11434/api/embed"
    monkeypatch.delenv("OLLAMA_HOST")
    assert ollama(provider, client, base_url=None).url == "http://127.0.0.1:11434/api/embed"


async def test_ollama_request_format_omits_unset_options(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    await ollama(provider, client).embed(["a"])
    await ollama(provider, client, options={"num_ctx": 512}, keep_alive="10m").embed(["b"])
    first, second = provider.requests
    assert first.path == "/api/embed"
    assert first.body == {"model": "nomic-embed-text", "input": ["a"]}
    assert second.body == {
        "model": "nomic-embed-text",
        "input": ["b"],
        "options": {"num_ctx": 512},
        "keep_alive": "10m",
    }
    assert "Authorization" not in first.headers


async def test_ollama_setup_pulls_a_missing_model_once(
    provider: FakeProvider, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await ollama(provider, client).setup()
    assert provider.ollama_pulls == ["nomic-embed-text"]
    assert [r.path for r in provider.requests] == ["/api/show", "/api/pull"]
    assert provider.requests[1].body == {
        "model": "nomic-embed-text",
        "insecure": False,
        "stream": False,
    }
    assert "pulling ollama model nomic-embed-text" in caplog.text
    await ollama(provider, client).setup()
    assert provider.ollama_pulls == ["nomic-embed-text"]


async def test_ollama_setup_reports_a_model_that_cannot_be_pulled(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    with pytest.raises(ProviderError, match=r"missing-model is not on the server .* pulled"):
        await ollama(provider, client, model="missing-model").setup()


async def test_ollama_setup_checks_the_model_dimensions(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    provider.ollama_models.add("nomic-embed-text")
    with pytest.raises(ConfigurationError, match=r"returns 8-dimensional .* expects 768"):
        await ollama(provider, client, dimensions=768).setup()


async def test_ollama_setup_says_when_the_server_is_not_running(client: httpx.AsyncClient) -> None:
    with FakeProvider() as gone:
        base = gone.base
    embedder = OllamaEmbedder(
        OllamaEmbedding(implementation="ollama", model="m", dimensions=DIMS, base_url=base),
        client=client,
        retry=FAST_RETRY,
    )
    with pytest.raises(ProviderError, match=f"could not reach Ollama at {base}.*OLLAMA_HOST"):
        await embedder.setup()


async def test_ollama_errors_carry_the_server_message(
    provider: FakeProvider, client: httpx.AsyncClient
) -> None:
    provider.ollama_models.add("other-model")
    with pytest.raises(ProviderError, match="ollama API error 404: model 'nomic-embed-text' not"):
        await ollama(provider, client).embed(["a"])


# -- LiteLLM ------------------------------------------------------------------------------------
def _vectorizer(embedding: dict[str, Any]) -> Any:
    return parse_vectorizer(
        {
            "id": 7,
            "source_schema": "public",
            "source_table": "t",
            "source_pk": [{"attnum": 1, "pknum": 1, "attname": "id", "typname": "int4"}],
            "trigger_name": "tr",
            "queue_schema": "ai",
            "queue_table": "q",
            "config": {
                "version": "0.12.1",
                "loading": {"implementation": "column", "column_name": "body"},
                "embedding": embedding,
                "chunking": {"implementation": "none"},
                "destination": {
                    "implementation": "table",
                    "target_schema": "public",
                    "target_table": "t_store",
                },
            },
        }
    )


async def test_litellm_without_the_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)  # importing it now fails
    vectorizer = _vectorizer(
        {"implementation": "litellm", "model": "cohere/embed-english-v3.0", "dimensions": 1024}
    )
    assert isinstance(vectorizer.config.embedding, LiteLLMEmbedding)
    with pytest.raises(ConfigurationError, match=r"pip install 'pgai\[litellm\]'"):
        make_embedder(vectorizer, client=client)


@pytest.mark.parametrize(
    ("model", "provider", "max_inputs", "max_tokens"),
    [
        ("cohere/embed-english-v3.0", "cohere", 96, None),
        ("embed-multilingual-v3.0", "cohere", 96, None),
        ("openai/text-embedding-3-small", "openai", 2048, 600_000),
        ("text-embedding-3-large", "openai", 2048, 600_000),
        ("azure/my-deployment", "azure", 2048, 600_000),
        ("bedrock/amazon.titan-embed-text-v2:0", "bedrock", 96, None),
        ("gemini/text-embedding-004", "gemini", 250, None),
        ("huggingface/BAAI/bge-small-en-v1.5", "huggingface", 2048, None),
        ("mistral/mistral-embed", "mistral", 128, 16_000),
        ("vertex_ai/text-embedding-005", "vertex_ai", 250, 20_000),
        ("voyage/voyage-3.5-lite", "voyage", 128, 1_000_000),
        ("voyage/voyage-3", "voyage", 128, 320_000),
        ("voyage/voyage-law-2", "voyage", 128, 120_000),
        ("somewhere/some-model", "somewhere", 5, None),
        ("mystery-model", "unknown", 5, None),
    ],
)
def test_litellm_request_limits_follow_the_provider(
    model: str, provider: str, max_inputs: int, max_tokens: int | None
) -> None:
    assert litellm_provider(model) == provider
    assert litellm_limits(model) == (max_inputs, max_tokens)


def test_litellm_batch_size_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGAI_LITELLM_MAX_CHUNKS_PER_BATCH", "17")
    assert litellm_limits("cohere/embed-english-v3.0") == (17, None)
    monkeypatch.setenv("PGAI_LITELLM_MAX_CHUNKS_PER_BATCH", "0")
    with pytest.raises(ConfigurationError, match="PGAI_LITELLM_MAX_CHUNKS_PER_BATCH"):
        litellm_limits("cohere/embed-english-v3.0")


# -- the factory ----------------------------------------------------------------------------------
async def test_the_factory_builds_every_provider_the_catalog_names(
    monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-1")
    monkeypatch.setenv("VOYAGE_API_KEY", "pa-1")
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 8},
            "openai",
        ),
        ({"implementation": "ollama", "model": "nomic-embed-text", "dimensions": 8}, "ollama"),
        ({"implementation": "voyageai", "model": "voyage-3.5", "dimensions": 8}, "voyageai"),
    ]
    for embedding, implementation in cases:
        embedder = make_embedder(_vectorizer(embedding), client=client)
        assert embedder.implementation == implementation


def test_voyage_without_its_key_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    vectorizer = _vectorizer({"implementation": "voyageai", "model": "voyage-3", "dimensions": 8})
    with pytest.raises(ConfigurationError, match="api_key_name=VOYAGE_API_KEY vectorizer_id=7"):
        make_embedder(vectorizer, client=client)


# -- the local model ----------------------------------------------------------------------------
def _local_embedder(client: httpx.AsyncClient, model: str = "all-MiniLM-L6-v2") -> Embedder:
    pytest.importorskip(
        "sentence_transformers",
        reason="the local extra is not installed (pip install torch==2.13.0 'pgai[local]')",
    )
    from pgai.vectorizer.embedders.local import SentenceTransformersEmbedder

    config = SentenceTransformersEmbedding(
        implementation="sentence_transformers", model=model, dimensions=384
    )
    return SentenceTransformersEmbedder(config, client=client, retry=FAST_RETRY)


async def test_the_local_model_gives_384_dimensional_normalised_vectors(
    client: httpx.AsyncClient,
) -> None:
    embedder = _local_embedder(client)
    await embedder.setup()
    vectors = await embedder.embed(["A cat sits on the mat.", "", "日本語のテキスト"])
    assert [len(v) for v in vectors] == [384, 384, 384]
    for vector in vectors:
        assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-5)


async def test_the_local_model_puts_similar_sentences_closer_than_unrelated_ones(
    client: httpx.AsyncClient,
) -> None:
    embedder = _local_embedder(client, model="sentence-transformers/all-MiniLM-L6-v2")
    cat, kitten, taxes = await embedder.embed(
        [
            "A cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
            "Quarterly tax returns are due in April.",
        ]
    )

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(cat, kitten) > 0.5
    assert cosine(cat, kitten) > cosine(cat, taxes) + 0.3
    assert cosine(kitten, taxes) < 0.3


async def test_the_local_model_batches_equal_one_by_one(client: httpx.AsyncClient) -> None:
    embedder = _local_embedder(client)
    texts = [f"sentence number {i}" for i in range(5)]
    batched = await embedder.embed(texts)
    for text, vector in zip(texts, batched, strict=True):
        [alone] = await embedder.embed([text])
        assert alone == pytest.approx(vector, abs=1e-5)


async def test_a_local_model_of_the_wrong_size_is_a_configuration_error(
    client: httpx.AsyncClient,
) -> None:
    pytest.importorskip("sentence_transformers")
    from pgai.vectorizer.embedders.local import SentenceTransformersEmbedder

    config = SentenceTransformersEmbedding(
        implementation="sentence_transformers", model="all-MiniLM-L6-v2", dimensions=768
    )
    embedder = SentenceTransformersEmbedder(config, client=client, retry=FAST_RETRY)
    with pytest.raises(ConfigurationError, match=r"returns 384-dimensional .* expects 768"):
        await embedder.setup()


async def test_a_local_model_that_is_not_available_is_a_clear_error(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    from pgai.vectorizer.embedders.local import SentenceTransformersEmbedder

    config = SentenceTransformersEmbedding(
        implementation="sentence_transformers", model="no-such-org/no-such-model", dimensions=8
    )
    embedder = SentenceTransformersEmbedder(config, client=client, retry=FAST_RETRY)
    with pytest.raises(ConfigurationError, match=r"could not load .* no-such-org/no-such-model"):
        await embedder.setup()


def test_the_local_provider_without_its_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    from pgai.vectorizer.embedders import local

    monkeypatch.setattr(local, "sentence_transformers_available", lambda: False)
    vectorizer = _vectorizer(
        {"implementation": "sentence_transformers", "model": "all-MiniLM-L6-v2", "dimensions": 384}
    )
    with pytest.raises(ConfigurationError, match=r"pip install 'pgai\[local\]'"):
        make_embedder(vectorizer, client=httpx.AsyncClient())
