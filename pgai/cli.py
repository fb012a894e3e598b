"""The ``pgai`` command line: ``pgai install`` and the ``pgai vectorizer`` commands."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from pgai import __version__
from pgai.catalog.installer import AlreadyInstalledError, install
from pgai.database import DEFAULT_DB_URL
from pgai.errors import PgaiError

if TYPE_CHECKING:
    from pgai.vectorizer.worker import Worker

app = typer.Typer(
    name="pgai",
    help="Keeps vector embeddings of PostgreSQL data up to date.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
vectorizer_app = typer.Typer(
    help="Run and inspect vectorizers.", no_args_is_help=True, add_completion=False
)
app.add_typer(vectorizer_app, name="vectorizer")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"pgai, version {__version__}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Show the version and exit.",
    ),
]


@app.callback()
def _root(version: VersionOption = False) -> None:
    """pgai: the ai catalog and the vectorizer worker."""


@vectorizer_app.callback()
def _vectorizer(version: VersionOption = False) -> None:
    """Run and inspect vectorizers."""


LOG_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
}


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=LOG_LEVELS[level.upper()],
        format="%(asctime)s [%(levelname)-8s] %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stdout,
        force=True,
    )
    # httpx logs every request at INFO; that is noise at the worker's INFO level.
    logging.getLogger("httpx").setLevel(max(LOG_LEVELS[level.upper()], logging.WARNING))


@app.command("install")
def install_command(
    db_url: Annotated[
        str,
        typer.Option(
            "-d",
            "--db-url",
            envvar=["PGAI_INSTALL_DB_URL", "VECTORIZER_DB_URL"],
            help="The database to install the ai catalog into.",
            show_default=True,
        ),
    ] = DEFAULT_DB_URL,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail if the catalog is already at this version.")
    ] = False,
    vector_extension_schema: Annotated[
        str | None,
        typer.Option(help="Schema to create the vector extension in, if it is missing."),
    ] = None,
) -> None:
    """Install or upgrade the ai catalog (and the vector extension) in a database."""
    _configure_logging("WARNING")  # the outcome is echoed below, once
    try:
        changed = install(db_url, vector_extension_schema=vector_extension_schema, strict=strict)
    except AlreadyInstalledError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except PgaiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if changed:
        typer.echo(f"pgai {__version__} installed")
    else:
        typer.echo(f"pgai {__version__} is already installed")


WorkerDbUrlOption = Annotated[
    str,
    typer.Option(
        "-d",
        "--db-url",
        envvar=["VECTORIZER_DB_URL", "PGAI_VECTORIZER_WORKER_DB_URL"],
        help="The database of the vectorizers (its password is never logged).",
    ),
]


@vectorizer_app.command("retry-failed")
def retry_failed_command(
    db_url: WorkerDbUrlOption = DEFAULT_DB_URL,
    vectorizer_ids: Annotated[
        list[int] | None,
        typer.Option("-i", "--vectorizer-id", help="Only these vectorizers (repeatable)."),
    ] = None,
) -> None:
    """Move rows from the failed queues back into the queues, with a fresh attempt count."""
    import anyio

    from pgai.vectorizer.admin import retry_failed

    _configure_logging("WARNING")
    try:
        moved = anyio.run(retry_failed, db_url, vectorizer_ids or [])
    except PgaiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for vectorizer_id, count in sorted(moved.items()):
        typer.echo(f"vectorizer {vectorizer_id}: {count} rows queued again")


@app.command("demo")
def demo_command(
    rows: Annotated[
        int | None, typer.Option(min=1, help="Load only this many documents (default: all).")
    ] = None,
    data_dir: Annotated[
        str, typer.Option(help="Where the embedded PostgreSQL keeps its data.")
    ] = ".pgai-demo",
    concurrency: Annotated[int, typer.Option("-c", "--concurrency", min=1)] = 2,
) -> None:
    """Try it on this machine: embedded PostgreSQL, a local model, semantic search."""
    from pgai.demo import main as run_demo

    _configure_logging("WARNING")
    try:
        code = run_demo(data_dir, rows, concurrency)
    except PgaiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    raise typer.Exit(code)


_BOOLEAN_WORDS = {"true", "false", "1", "0", "yes", "no", "on", "off", "t", "f", "y", "n"}


def _parse_poll_interval(value: str) -> timedelta:
    from pgai.vectorizer.worker import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _parse_boolean(value: str | None) -> str | None:
    if value is None:
        return None
    word = value.strip().lower()
    if word in ("true", "1", "yes", "on", "t", "y"):
        return "true"
    if word in ("false", "0", "no", "off", "f", "n"):
        return "false"
    raise typer.BadParameter(f"{value!r} is not a valid boolean (use true or false)")


def _check_log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return value.upper()


@vectorizer_app.command("worker")
def worker_command(
    db_url: WorkerDbUrlOption = DEFAULT_DB_URL,
    vectorizer_ids: Annotated[
        list[int] | None,
        typer.Option(
            "-i",
            "--vectorizer-id",
            envvar="PGAI_VECTORIZER_WORKER_VECTORIZER_IDS",
            help="Only run these vectorizers (repeatable: -i 1 -i 2). Default: all of them.",
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            envvar="PGAI_VECTORIZER_WORKER_LOG_LEVEL",
            callback=_check_log_level,
            help="DEBUG, INFO, WARN, ERROR, FATAL or CRITICAL.",
        ),
    ] = "INFO",
    poll_interval: Annotated[
        str,
        typer.Option(
            envvar="PGAI_VECTORIZER_WORKER_POLL_INTERVAL",
            help="How often to look for work: 5m, 30s, 1h, or plain seconds.",
        ),
    ] = "5m",
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            envvar="PGAI_VECTORIZER_WORKER_ONCE",
            help="Process until no queued row is claimable, then exit (implies exit-on-error).",
        ),
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "-c",
            "--concurrency",
            min=1,
            envvar="PGAI_VECTORIZER_WORKER_CONCURRENCY",
            help="Worker coroutines per vectorizer (default: the vectorizer's own setting, or 1).",
        ),
    ] = None,
    exit_on_error: Annotated[
        str | None,
        typer.Option(
            "--exit-on-error",
            envvar="PGAI_VECTORIZER_WORKER_EXIT_ON_ERROR",
            metavar="BOOLEAN",
            callback=_parse_boolean,
            help="Exit with status 1 on the first failure: true or false (default: true with "
            "--once, else false).",
        ),
    ] = None,
    grace_period: Annotated[
        str,
        typer.Option(
            envvar="PGAI_VECTORIZER_WORKER_GRACE_PERIOD",
            help="On SIGTERM, how long in-flight batches may take to finish.",
        ),
    ] = "30s",
    listen: Annotated[
        bool,
        typer.Option(
            "--listen/--no-listen",
            envvar="PGAI_VECTORIZER_WORKER_LISTEN",
            help="Wake on NOTIFY when rows are queued (turn off behind PgBouncer in "
            "transaction mode; polling remains).",
        ),
    ] = True,
    version: VersionOption = False,
) -> None:
    """Run the vectorizer worker: embed queued rows and write the vectors back."""
    import anyio

    from pgai.vectorizer.worker import Worker

    _configure_logging(log_level)
    worker = Worker(
        db_url,
        poll_interval=_parse_poll_interval(poll_interval),
        once=once,
        vectorizer_ids=vectorizer_ids or [],
        exit_on_error=None if exit_on_error is None else exit_on_error == "true",
        concurrency=concurrency,
        grace_period=_parse_poll_interval(grace_period),
        listen=listen,
    )
    error = anyio.run(_run_with_signals, worker)
    raise typer.Exit(1 if error is not None else 0)


async def _run_with_signals(worker: Worker) -> Exception | None:
    """First SIGTERM/SIGINT: graceful shutdown. A second one: exit at once."""
    import os
    import signal

    import anyio

    result: list[Exception | None] = []
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                received = 0
                async for signum in signals:
                    received += 1
                    logging.getLogger("pgai").info(
                        "received %s, %s",
                        signal.Signals(signum).name,
                        "shutting down" if received == 1 else "exiting now",
                    )
                    if received > 1:
                        os._exit(1)
                    await worker.request_graceful_shutdown()

        async def work() -> None:
            result.append(await worker.run())
            tg.cancel_scope.cancel()

        tg.start_soon(watch_signals)
        tg.start_soon(work)
    return result[0] if result else None


def _normalise_argv(argv: list[str]) -> list[str]:
    """Accept the documented spellings: ``-id 42`` and a bare ``--exit-on-error`` flag (pgai
    takes a value: ``--exit-on-error true``)."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "-id":
            out.append("--vectorizer-id")
            continue
        if arg.startswith("-id="):
            out.append("--vectorizer-id=" + arg[4:])
            continue
        out.append(arg)
        if arg == "--exit-on-error":
            following = argv[i + 1] if i + 1 < len(argv) else None
            if following is None or following.lower() not in _BOOLEAN_WORDS:
                out.append("true")
    return out


def main() -> None:
    """Console-script entry point."""
    app(args=_normalise_argv(sys.argv[1:]), prog_name="pgai")
