"""pgai: keeps vector embeddings of PostgreSQL data up to date.

The package has two halves: the ``ai`` catalog (installed with :func:`install` or
``pgai install``) in which vectorizers are defined in SQL, and the vectorizer worker that
turns queued rows into embeddings.
"""

from typing import TYPE_CHECKING, Any

from pgai.catalog.installer import ainstall, install

if TYPE_CHECKING:
    from pgai.vectorizer.worker import Worker

__version__ = "0.13.0"

__all__ = ["Worker", "__version__", "ainstall", "install"]


def __getattr__(name: str) -> Any:
    # The worker pulls in httpx and tiktoken; `import pgai` for install() stays light.
    if name == "Worker":
        from pgai.vectorizer.worker import Worker

        return Worker
    raise AttributeError(f"module 'pgai' has no attribute {name!r}")
