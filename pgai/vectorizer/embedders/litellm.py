"""Embeddings through LiteLLM (optional extra ``pgai[litellm]``): Cohere, Mistral, Bedrock,
Vertex AI, Azure, Hugging Face, ... behind one call, ``litellm.aembedding``.

LiteLLM brings its own HTTP clients, so these requests do not use the worker's shared
``httpx.AsyncClient``; they still go through the shared rate limiter and retry policy.
Request sizes follow the limits of the provider named by the model's prefix
(``cohere/embed-english-v3.0`` → cohere).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import httpx

from pgai.errors import ConfigurationError
from pgai.vectorizer.config import LiteLLMEmbedding
from pgai.vectorizer.embedders.base import (
    RETRYABLE_STATUSES,
    Embedder,
    ProviderError,
    RetryPolicy,
    byte_token_estimate,
    parse_retry_after,
)
from pgai.vectorizer.embedders.voyageai import (
    MAX_CONTEXT_TOKENS,
    estimate_voyage_tokens,
    voyage_tokens_per_request,
)
from pgai.vectorizer.tokens import encoding_for_model

MAX_CHUNKS_ENV = "PGAI_LITELLM_MAX_CHUNKS_PER_BATCH"
INSTALL_HINT = "pip install 'pgai[litellm]'"

#: Inputs per request each provider accepts; a provider not listed gets a cautious 5.
MAX_INPUTS_BY_PROVIDER = {
    "cohere": 96,
    "openai": 2048,
    "azure": 2048,
    "bedrock": 96,
    "gemini": 250,
    "huggingface": 2048,
    "mistral": 128,
    "vertex_ai": 250,
    "voyage": 128,
}
DEFAULT_MAX_INPUTS = 5

#: Tokens per request, where the provider has a limit (voyage: by model, see voyageai.py).
MAX_TOKENS_BY_PROVIDER = {
    "mistral": 16_000,
    "vertex_ai": 20_000,
    "openai": 600_000,
    "azure": 600_000,
}

#: Model-name prefixes LiteLLM routes to a provider when the model has no ``provider/`` prefix.
_UNPREFIXED = (
    ("text-embedding-", "openai"),
    ("embed-", "cohere"),
    ("voyage-", "voyage"),
    ("mistral-embed", "mistral"),
)


def litellm_provider(model: str) -> str:
    """The provider LiteLLM sends ``model`` to: its ``provider/`` prefix, else a guess from the
    name, else ``"unknown"``."""
    prefix, slash, _rest = model.partition("/")
    if slash and prefix:
        return prefix
    for start, provider in _UNPREFIXED:
        if model.startswith(start):
            return provider
    return "unknown"


def litellm_limits(model: str) -> tuple[int, int | None]:
    """(inputs per request, tokens per request or None) for ``model``."""
    provider = litellm_provider(model)
    override = os.environ.get(MAX_CHUNKS_ENV)
    if override is not None and override.strip():
        try:
            max_inputs = int(override)
        except ValueError:
            max_inputs = 0
        if max_inputs < 1:
            raise ConfigurationError(
                f"{MAX_CHUNKS_ENV} must be a positive integer, got {override!r}"
            )
    else:
        max_inputs = MAX_INPUTS_BY_PROVIDER.get(provider, DEFAULT_MAX_INPUTS)
    if provider == "voyage":
        return max_inputs, voyage_tokens_per_request(model.partition("/")[2] or model)
    return max_inputs, MAX_TOKENS_BY_PROVIDER.get(provider)


def import_litellm() -> ModuleType:
    """The litellm module, or a ConfigurationError saying how to install it."""
    # At import LiteLLM downloads its model price list unless told to use the copy it ships:
    # a worker must not phone home (and offline that download stalls every start).
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        return importlib.import_module("litellm")
    except ImportError as exc:
        raise ConfigurationError(
            "the litellm embedding provider needs the litellm package, which is not "
            f"installed: {INSTALL_HINT}"
        ) from exc


class LiteLLMEmbedder(Embedder):
    implementation = "litellm"

    def __init__(
        self,
        config: LiteLLMEmbedding,
        *,
        api_key: str | None,
        client: httpx.AsyncClient,
        retry: RetryPolicy,
    ) -> None:
        super().__init__(dimensions=config.dimensions, client=client, retry=retry)
        self.litellm = import_litellm()
        self.config = config
        self.api_key = api_key
        self.provider = litellm_provider(config.model)
        self.url = f"litellm:{config.model}"
        self.max_inputs_per_request, self.max_tokens_per_request = litellm_limits(config.model)
        self.encoding = (
            encoding_for_model(config.model.partition("/")[2] or config.model)
            if self.provider in ("openai", "azure")
            else None
        )

    def count_tokens(self, text: str) -> int:
        if self.provider == "voyage":
            return min(estimate_voyage_tokens(text), MAX_CONTEXT_TOKENS)
        if self.encoding is not None:
            tokens = len(self.encoding.encode(text, disallowed_special=()))
            return max(byte_token_estimate(text), tokens)
        # Without the provider's tokenizer, a token per 3 bytes errs on the safe side.
        return -(-len(text.encode("utf-8")) // 3)

    async def _request(self, texts: list[str]) -> list[list[float]]:
        options: dict[str, Any] = dict(self.config.extra_options or {})
        try:
            response = await self.litellm.aembedding(
                model=self.config.model, input=texts, api_key=self.api_key, **options
            )
        except ProviderError:
            raise
        except Exception as exc:
            # LiteLLM maps every provider's errors to exception classes of its own.
            raise self._error(exc) from exc
        try:
            data = response["data"] if isinstance(response, dict) else response.data
            items = [item if isinstance(item, dict) else dict(item) for item in data]
            ordered = sorted(items, key=lambda item: int(item.get("index", 0)))
            return [list(item["embedding"]) for item in ordered]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"litellm returned a response that is not an embeddings list: {response!r:.200}",
                provider=self.implementation,
            ) from exc

    def _error(self, exc: Exception) -> ProviderError:
        status = getattr(exc, "status_code", None)
        status = status if isinstance(status, int) else None
        timeout = isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower()
        connection = "connection" in type(exc).__name__.lower()
        retryable = (
            timeout
            or connection
            or (status is not None and (status in RETRYABLE_STATUSES or status >= 500))
        )
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        if not isinstance(headers, httpx.Headers):
            headers = None
        return ProviderError(
            f"litellm ({self.provider}) error{f' {status}' if status else ''}: "
            f"{type(exc).__name__}: {exc}",
            provider=self.implementation,
            status=status,
            retryable=retryable,
            retry_after=parse_retry_after(headers) if headers is not None else None,
            headers=headers,
        )
