"""pgai: keeps vector embeddings of PostgreSQL data up to date.

The package has two halves: the ``ai`` catalog (installed with :func:`install` or
``pgai install``) in which vectorizers are defined in SQL, and the vectorizer worker that
turns queued rows into embeddings.
"""

from pgai.catalog.installer import ainstall, install

__version__ = "0.13.0"

__all__ = ["__version__", "ainstall", "install"]
