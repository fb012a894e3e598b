"""OpenAI embeddings (and any OpenAI-compatible server through ``base_url``)."""

from __future__ import annotations

import binascii
import logging
import math
import os
import sys
from array import array
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
import httpx
import pybase64
import tiktoken

from pgai.vectorizer.config import OpenAIEmbedding
from pgai.vectorizer.embedders.base import (
    TOKENIZE_IN_THREAD_CHARS,
    Embedder,
    ProviderError,
    RetryPolicy,
    response_json,
)
from pgai.vectorizer.tokens import CL100K_MODELS, encoding_for_model

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Context of the OpenAI embedding models: longer inputs are truncated (the stored chunk is not).
MAX_INPUT_TOKENS = 8191
#: OpenAI checks this per request against an estimate of a quarter token per UTF-8 byte.
MAX_REQUEST_TOKENS = 300_000
#: Up to this many requests' worth of text is split by bytes, without tokenizing.
BYTE_PACKED_REQUESTS = 4


def _vector(value: Any) -> Any:
    """An embedding as sent: base64 of little-endian float32, or a list of numbers (used as it
    is; validated by the caller)."""
    if isinstance(value, str):
        values = array("f")
        # pybase64 decodes with SIMD: a tenth of the time of the standard library's, which
        # was the largest single cost of a CPU-bound backfill
        values.frombytes(pybase64.b64decode(value, validate=True))
        if sys.byteorder != "little":
            values.byteswap()
        return values
    return value


class OpenAIEmbedder(Embedder):
    implementation = "openai"
    max_inputs_per_request = 2048
    max_tokens_per_request = MAX_REQUEST_TOKENS

    def __init__(
        self,
        config: OpenAIEmbedding,
        *,
        api_key: str | None,
        client: httpx.AsyncClient,
        retry: RetryPolicy,
    ) -> None:
        super().__init__(dimensions=config.dimensions, client=client, retry=retry)
        self.config = config
        self.api_key = api_key
        base = config.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.url = base.rstrip("/") + "/embeddings"
        if config.model == "text-embedding-ada-002" and config.dimensions not in (None, 1536):
            raise ProviderError(
                "dimensions must be 1536 for text-embedding-ada-002",
                provider=self.implementation,
            )

    @property
    def encoding(self) -> tiktoken.Encoding | None:
        """The model's tokenizer, loaded on first use: most batches never need it (their bytes
        fit under the limits), and loading it costs a quarter second and tens of MB."""
        return encoding_for_model(self.config.model)

    def count_tokens(self, text: str) -> int:
        # Keep both the real token count and OpenAI's byte estimate under the cap: the
        # estimate undercounts CJK text, the real count undercounts nothing.
        estimate = math.ceil(len(text.encode("utf-8")) / 4)
        if self.encoding is None:
            return estimate
        return max(estimate, len(self.encoding.encode(text, disallowed_special=())))

    def _plan(self, texts: Sequence[str]) -> list[tuple[range, int]]:
        # A token covers at least one byte of UTF-8, so a byte count bounds both the real
        # token count and OpenAI's estimate: texts packed by bytes need no tokenizing, which
        # costs more CPU than the request itself. Packing by bytes makes up to 4x the requests
        # that packing by tokens would (English has about 4 bytes a token), so beyond a few
        # requests the texts are tokenized and packed fuller.
        sizes = [len(text.encode("utf-8")) for text in texts]
        limit = self.max_tokens_per_request
        if not sizes:
            return []
        if max(sizes) <= limit and sum(sizes) <= BYTE_PACKED_REQUESTS * limit:
            plans: list[tuple[range, int]] = []
            start = size = estimate = 0
            for i, text_size in enumerate(sizes):
                full = i - start >= self.max_inputs_per_request or size + text_size > limit
                if i > start and full:
                    plans.append((range(start, i), estimate))
                    start, size, estimate = i, 0, 0
                size += text_size
                estimate += math.ceil(text_size / 4)
            plans.append((range(start, len(sizes)), estimate))
            return plans
        return super()._plan(texts)

    def prepare(self, text: str) -> str:
        """Truncate an input to the model's context; only the text sent is cut."""
        if self.config.model not in CL100K_MODELS:
            return text
        if len(text) <= MAX_INPUT_TOKENS and len(text.encode("utf-8")) <= MAX_INPUT_TOKENS:
            return text  # fewer bytes than the limit has tokens: nothing to cut
        if self.encoding is None:
            return text
        tokens = self.encoding.encode(text, disallowed_special=())
        if len(tokens) <= MAX_INPUT_TOKENS:
            return text
        log.warning("chunk truncated from %d to %d tokens", len(tokens), MAX_INPUT_TOKENS)
        return self.encoding.decode(tokens[:MAX_INPUT_TOKENS])

    async def prepare_inputs(self, texts: Sequence[str]) -> Sequence[str]:
        # Truncation tokenizes inputs: CPU work that stays off the event loop when large.
        if sum(map(len, texts)) > TOKENIZE_IN_THREAD_CHARS:
            return await anyio.to_thread.run_sync(lambda: [self.prepare(t) for t in texts])
        return [self.prepare(t) for t in texts]

    async def _request(self, texts: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {
            "input": texts,
            "model": self.config.model,
            # base64 float32, as the official SDK asks by default (so OpenAI-compatible servers
            # speak it): a quarter of the bytes of decimal floats, and decoded without creating
            # a Python object per number. A server that answers with float lists is understood.
            "encoding_format": "base64",
        }
        if self.config.dimensions is not None and self.config.model != "text-embedding-ada-002":
            body["dimensions"] = self.config.dimensions
        if self.config.user is not None:
            body["user"] = self.config.user
        headers = {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for env, header in (
            ("OPENAI_ORG_ID", "OpenAI-Organization"),
            ("OPENAI_PROJECT_ID", "OpenAI-Project"),
        ):
            if value := os.environ.get(env):
                headers[header] = value
        response = await self._post(self.url, json=body, headers=headers)
        if response.status_code >= 300:
            raise self.error_from_response(response)
        try:
            data = response_json(response)["data"]
            ordered = sorted(data, key=lambda item: int(item["index"]))
            return [_vector(item["embedding"]) for item in ordered]
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ProviderError(
                f"the openai API returned a response that is not an embeddings list: "
                f"{response.text[:200]!r}",
                provider=self.implementation,
                status=response.status_code,
                retryable=False,
            ) from exc
