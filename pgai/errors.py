"""The one error hierarchy of pgai.

Configuration errors fail fast with a message that says what to change; provider errors carry
the HTTP status and whether a retry can help; database errors wrap what PostgreSQL reported.
"""


class PgaiError(Exception):
    """Base of every error pgai raises on purpose."""


class ConfigurationError(PgaiError):
    """Something the user configured is wrong; retrying will not help until it is changed."""


class DatabaseError(PgaiError):
    """The database refused or could not be reached."""


class CatalogError(DatabaseError):
    """The ``ai`` catalog is missing, outdated, or could not be installed."""
