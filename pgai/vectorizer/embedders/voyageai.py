"""VoyageAI embeddings (``POST {base}/embeddings``).

The base URL is ``https://api.voyageai.com/v1`` unless the environment variable
``VOYAGE_API_BASE`` names another (a proxy, or a local test server). Inputs are truncated by
Voyage to the model's context (``truncation: true``); requests are kept within Voyage's limits
of 128 inputs and the model's tokens per request. Voyage's tokenizer is not available offline,
so tokens are estimated pessimistically from the text: a request planned too small costs one
more request, one planned too large would fail the batch.
"""

from __future__ import annotations

import math
import os
import struct
from typing import Any

import httpx
import pybase64

from pgai.vectorizer.config import VoyageAIEmbedding
from pgai.vectorizer.embedders.base import Embedder, RetryPolicy, response_json

DEFAULT_BASE_URL = "https://api.voyageai.com/v1"
BASE_URL_ENV = "VOYAGE_API_BASE"
MAX_INPUTS = 128
#: Voyage truncates each input to the model's context; no input counts for more than this.
MAX_CONTEXT_TOKENS = 32_000

_TOKENS_PER_REQUEST = {
    "voyage-3.5-lite": 1_000_000,
    "voyage-3-lite": 1_000_000,
    "voyage-3.5": 320_000,
    "voyage-3": 320_000,
    "voyage-2": 320_000,
}
DEFAULT_TOKENS_PER_REQUEST = 120_000

#: struct codes of base64-encoded embeddings, by output_dtype (binary types are bit-packed).
_BASE64_DTYPES = {"float": "f", "int8": "b", "binary": "b", "uint8": "B", "ubinary": "B"}


def voyage_tokens_per_request(model: str) -> int:
    """Voyage's limit on the total tokens of one request for ``model``."""
    return _TOKENS_PER_REQUEST.get(model, DEFAULT_TOKENS_PER_REQUEST)


def estimate_voyage_tokens(text: str) -> int:
    """A pessimistic token count without Voyage's tokenizer: a token per 3 ASCII characters
    and 2 per other character (CJK, emoji, accented letters cost more than one token)."""
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return math.ceil(ascii_chars / 3) + 2 * (len(text) - ascii_chars)


def decode_base64_embedding(data: str, dtype: str | None) -> list[float]:
    """An embedding Voyage sent base64-encoded: little-endian float32 unless ``dtype`` says
    (u)int8 or (u)binary."""
    code = _BASE64_DTYPES.get(dtype or "float")
    if code is None:
        raise ValueError(f"unknown output_dtype {dtype!r}")
    raw = pybase64.b64decode(data, validate=True)
    size = struct.calcsize(code)
    if len(raw) % size:
        raise ValueError(f"{len(raw)} bytes is not a whole number of {dtype or 'float'} values")
    return [float(x) for x in struct.unpack(f"<{len(raw) // size}{code}", raw)]


class VoyageAIEmbedder(Embedder):
    implementation = "voyageai"
    max_inputs_per_request = MAX_INPUTS

    def __init__(
        self,
        config: VoyageAIEmbedding,
        *,
        api_key: str | None,
        client: httpx.AsyncClient,
        retry: RetryPolicy,
    ) -> None:
        super().__init__(dimensions=config.dimensions, client=client, retry=retry)
        self.config = config
        self.api_key = api_key
        base = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        self.url = base.rstrip("/") + "/embeddings"
        self.max_tokens_per_request = voyage_tokens_per_request(config.model)

    def count_tokens(self, text: str) -> int:
        return min(estimate_voyage_tokens(text), MAX_CONTEXT_TOKENS)

    async def _request(self, texts: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {
            "input": texts,
            "model": self.config.model,
            # null is meaningful to Voyage (no retrieval prompt), so it is always sent.
            "input_type": self.config.input_type,
            "truncation": True,
        }
        if self.config.output_dimension is not None:
            body["output_dimension"] = self.config.output_dimension
        if self.config.output_dtype is not None:
            body["output_dtype"] = self.config.output_dtype
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = await self._post(self.url, json=body, headers=headers)
        if response.status_code >= 300:
            raise self.error_from_response(response)
        try:
            data = response_json(response)["data"]
            ordered = sorted(data, key=lambda item: int(item["index"]))
            vectors: list[list[float]] = []
            for item in ordered:
                embedding = item["embedding"]
                if isinstance(embedding, str):
                    vectors.append(decode_base64_embedding(embedding, self.config.output_dtype))
                else:
                    vectors.append(list(embedding))
            return vectors
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise self.malformed_response(response, "an embeddings list") from exc
