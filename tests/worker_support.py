"""Helpers shared by the worker tests."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from pgai.vectorizer import Worker
from pgai.vectorizer.embedders.base import RetryPolicy

DIMS = 8
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


def make_worker(db_url: str, **kwargs: object) -> Worker:
    """A worker tuned for tests: once, fast provider retries, millisecond back-off."""
    settings: dict[str, object] = {
        "once": True,
        "provider_retry": FAST_RETRY,
        "retry_backoff": timedelta(milliseconds=1),
        "max_retry_backoff": timedelta(milliseconds=2),
    }
    settings.update(kwargs)
    return Worker(db_url, **settings)  # type: ignore[arg-type]


def run_pgai(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``pgai`` command line (``python -m pgai``) to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pgai", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
