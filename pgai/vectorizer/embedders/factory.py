"""Builds the embedder a vectorizer's config asks for."""

from __future__ import annotations

import os

import httpx

from pgai.errors import ConfigurationError
from pgai.vectorizer.config import (
    LiteLLMEmbedding,
    OllamaEmbedding,
    OpenAIEmbedding,
    SentenceTransformersEmbedding,
    Vectorizer,
    VoyageAIEmbedding,
)
from pgai.vectorizer.embedders.base import Embedder, RetryPolicy


class ApiKeyNotFoundError(ConfigurationError):
    """The environment variable the config names for the API key is unset or empty."""


def resolve_api_key(vectorizer: Vectorizer) -> str | None:
    """The API key from the environment variable named by ``embedding.api_key_name``."""
    name = getattr(vectorizer.config.embedding, "api_key_name", None)
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise ApiKeyNotFoundError(
            f"api_key_name={name} vectorizer_id={vectorizer.id}: the environment variable "
            f"{name} is not set; export {name}=<your key> for the worker"
        )
    return value


def make_embedder(
    vectorizer: Vectorizer, *, client: httpx.AsyncClient, retry: RetryPolicy | None = None
) -> Embedder:
    """The embedder for ``vectorizer``; configuration problems raise ConfigurationError."""
    config = vectorizer.config.embedding
    retry = retry or RetryPolicy()
    if isinstance(config, OpenAIEmbedding):
        from pgai.vectorizer.embedders.openai import OpenAIEmbedder

        return OpenAIEmbedder(
            config, api_key=resolve_api_key(vectorizer), client=client, retry=retry
        )
    if isinstance(config, OllamaEmbedding):
        from pgai.vectorizer.embedders.ollama import OllamaEmbedder

        return OllamaEmbedder(config, client=client, retry=retry)
    if isinstance(config, VoyageAIEmbedding):
        from pgai.vectorizer.embedders.voyageai import VoyageAIEmbedder

        return VoyageAIEmbedder(
            config, api_key=resolve_api_key(vectorizer), client=client, retry=retry
        )
    if isinstance(config, LiteLLMEmbedding):
        from pgai.vectorizer.embedders.litellm import LiteLLMEmbedder, import_litellm

        import_litellm()  # a missing package is the first thing to fix, before the key
        return LiteLLMEmbedder(
            config, api_key=resolve_api_key(vectorizer), client=client, retry=retry
        )
    if isinstance(config, SentenceTransformersEmbedding):
        from pgai.vectorizer.embedders.local import SentenceTransformersEmbedder

        return SentenceTransformersEmbedder(config, client=client, retry=retry)
    raise ConfigurationError(
        f"vectorizer {vectorizer.id}: the {config.implementation} embedding provider is not "
        "available in this version of the worker yet"
    )
