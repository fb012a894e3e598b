"""The ``ai`` catalog: the schema in which vectorizers are defined, and its installer."""

from pgai.catalog.installer import (
    CONFIG_FORMAT_VERSION,
    AlreadyInstalledError,
    CatalogSource,
    Migration,
    ainstall,
    install,
)

__all__ = [
    "CONFIG_FORMAT_VERSION",
    "AlreadyInstalledError",
    "CatalogSource",
    "Migration",
    "ainstall",
    "install",
]
