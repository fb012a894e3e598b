"""Embedding providers behind one async interface (see :mod:`pgai.vectorizer.embedders.base`)."""

from pgai.vectorizer.embedders.base import Embedder, ProviderError, RetryPolicy
from pgai.vectorizer.embedders.factory import make_embedder

__all__ = ["Embedder", "ProviderError", "RetryPolicy", "make_embedder"]
