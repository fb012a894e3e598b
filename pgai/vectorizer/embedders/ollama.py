"""Ollama embeddings through its native ``/api/embed`` endpoint.

The host comes from ``base_url`` in the config, else the ``OLLAMA_HOST`` environment variable,
else ``http://127.0.0.1:11434``, normalised the way Ollama's own clients read ``OLLAMA_HOST``.
Setup checks the model with ``/api/show`` and pulls it when the server does not have it.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import urlsplit

import httpx

from pgai.errors import ConfigurationError
from pgai.vectorizer.config import OllamaEmbedding
from pgai.vectorizer.embedders.base import Embedder, ProviderError, RetryPolicy, response_json

log = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
MAX_CHUNKS_ENV = "PGAI_VECTORIZER_OLLAMA_MAX_CHUNKS_PER_BATCH"
DEFAULT_MAX_CHUNKS = 2048
#: A pull downloads gigabytes: no read timeout, only a connect timeout.
PULL_TIMEOUT = httpx.Timeout(None, connect=10.0)


def normalize_ollama_host(host: str | None) -> str:
    """``scheme://host:port[/path]`` from what users write in ``OLLAMA_HOST`` or ``base_url``.

    A missing scheme means ``http``; a missing port means 11434, or 80/443 when the scheme was
    written out; a trailing ``/`` is dropped and any other path kept.
    """
    text = (host or "").strip()
    if not text:
        return DEFAULT_HOST
    explicit_scheme = "://" in text
    parts = urlsplit(text if explicit_scheme else f"http://{text}")
    scheme = parts.scheme or "http"
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"invalid Ollama host {host!r}: {exc}") from exc
    if port is None:
        port = (
            {"http": 80, "https": 443}.get(scheme, DEFAULT_PORT)
            if explicit_scheme
            else (DEFAULT_PORT)
        )
    hostname = parts.hostname or "127.0.0.1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return f"{scheme}://{hostname}:{port}{parts.path.rstrip('/')}"


def max_chunks_per_batch() -> int:
    """Inputs per ``/api/embed`` request, from ``PGAI_VECTORIZER_OLLAMA_MAX_CHUNKS_PER_BATCH``."""
    value = os.environ.get(MAX_CHUNKS_ENV)
    if value is None or not value.strip():
        return DEFAULT_MAX_CHUNKS
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigurationError(f"{MAX_CHUNKS_ENV} must be a positive integer, got {value!r}")
    return number


class OllamaEmbedder(Embedder):
    implementation = "ollama"
    max_tokens_per_request = None

    def __init__(
        self, config: OllamaEmbedding, *, client: httpx.AsyncClient, retry: RetryPolicy
    ) -> None:
        super().__init__(dimensions=config.dimensions, client=client, retry=retry)
        self.config = config
        self.host = normalize_ollama_host(config.base_url or os.environ.get("OLLAMA_HOST"))
        self.url = f"{self.host}/api/embed"
        self.max_inputs_per_request = max_chunks_per_batch()

    async def setup(self) -> None:
        """Make sure the server has the model: ``/api/show``, then ``/api/pull`` if missing."""
        model = self.config.model
        try:
            response = await self.client.post(f"{self.host}/api/show", json={"model": model})
        except httpx.TransportError as exc:
            raise ProviderError(
                f"could not reach Ollama at {self.host}: {exc!r}; is it running? Set base_url "
                "in ai.embedding_ollama() or OLLAMA_HOST for the worker",
                provider=self.implementation,
                retryable=True,
            ) from exc
        if response.status_code < 300:
            self._check_dimensions(response)
            return
        error = self.error_from_response(response)
        if response.status_code == 404 or "not found" in str(error).lower():
            await self._pull(model)
        else:
            # Older and newer servers word their errors differently; embedding will tell.
            log.warning("could not inspect ollama model %s: %s", model, error)

    async def _pull(self, model: str) -> None:
        log.warning("pulling ollama model %s from %s", model, self.host)
        response = await self.client.post(
            f"{self.host}/api/pull",
            json={"model": model, "insecure": False, "stream": False},
            timeout=PULL_TIMEOUT,
        )
        if response.status_code >= 300:
            error = self.error_from_response(response)
            raise ProviderError(
                f"the ollama model {model} is not on the server at {self.host} and could not "
                f"be pulled: {error}",
                provider=self.implementation,
                status=response.status_code,
            )
        try:
            status = response.json().get("status")
        except (ValueError, AttributeError):
            status = None
        if status not in (None, "success"):
            raise ProviderError(
                f"pulling the ollama model {model} did not succeed: {response.text[:200]!r}",
                provider=self.implementation,
                status=response.status_code,
            )

    def _check_dimensions(self, response: httpx.Response) -> None:
        """Fail at setup, not on every batch, when the model's size is not the configured one."""
        try:
            info = response.json().get("model_info") or {}
        except (ValueError, AttributeError):
            return
        if not isinstance(info, dict):
            return
        sizes = {v for k, v in info.items() if k.endswith(".embedding_length")}
        if len(sizes) != 1 or self.dimensions is None:
            return
        size = sizes.pop()
        if isinstance(size, int) and size != self.dimensions:
            raise ConfigurationError(
                f"the ollama model {self.config.model} returns {size}-dimensional embeddings, "
                f"but the vectorizer expects {self.dimensions}: recreate the vectorizer with "
                f"dimensions => {size} or choose another model"
            )

    async def _request(self, texts: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.config.model, "input": texts}
        if self.config.options is not None:
            body["options"] = self.config.options
        if self.config.keep_alive is not None:
            body["keep_alive"] = self.config.keep_alive
        response = await self._post(self.url, json=body)
        if response.status_code >= 300:
            raise self.error_from_response(response)
        try:
            embeddings = response_json(response)["embeddings"]
            if not isinstance(embeddings, list):
                raise TypeError("embeddings is not a list")
            return [list(vector) for vector in embeddings]
        except (ValueError, KeyError, TypeError) as exc:
            raise self.malformed_response(response, "a list of embeddings") from exc
