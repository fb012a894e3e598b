"""The vectorizer worker: turns queued source rows into stored embeddings.

``from pgai.vectorizer import Worker`` is the library entry point; see :class:`Worker`.
"""

from pgai.vectorizer.worker import Worker, init_connection, parse_duration

__all__ = ["Worker", "init_connection", "parse_duration"]
