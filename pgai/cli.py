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
    from pgai.health import HealthServer
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


def _configure_logging(level: str, log_format: str = "text") -> None:
    from pgai.logs import configure_logging

    # text or json lines on stdout, secrets redacted (see pgai.logs)
    configure_logging(LOG_LEVELS[level.upper()], "json" if log_format == "json" else "text")


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


@vectorizer_app.command("status")
def status_command(
    db_url: WorkerDbUrlOption = DEFAULT_DB_URL,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")
    ] = False,
) -> None:
    """Show every vectorizer (pending and failed rows, last success and error) and the live
    workers."""
    import json

    import anyio

    from pgai.vectorizer.status import read_status, render_table

    _configure_logging("WARNING")
    try:
        status = anyio.run(read_status, db_url)
    except PgaiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(status.to_json(), indent=2))
    else:
        typer.echo(render_table(status))


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


def _check_log_format(value: str) -> str:
    if value.lower() not in ("text", "json"):
        raise typer.BadParameter(f"{value!r} is not one of text, json")
    return value.lower()


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
    log_format: Annotated[
        str,
        typer.Option(
            envvar="PGAI_VECTORIZER_WORKER_LOG_FORMAT",
            callback=_check_log_format,
            help="text (for people) or json (one object a line, for log collectors).",
        ),
    ] = "text",
    health_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            envvar="PGAI_VECTORIZER_WORKER_HEALTH_PORT",
            help="Serve /healthz, /readyz and /metrics (Prometheus) on this port. Default: off.",
        ),
    ] = None,
    health_host: Annotated[
        str,
        typer.Option(
            envvar="PGAI_VECTORIZER_WORKER_HEALTH_HOST",
            help="The address the health and metrics server listens on.",
        ),
    ] = "0.0.0.0",
    version: VersionOption = False,
) -> None:
    """Run the vectorizer worker: embed queued rows and write the vectors back."""
    import anyio

    from pgai.vectorizer.worker import Worker

    _configure_logging(log_level, log_format)
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
    health = None
    if health_port is not None:
        from pgai.health import HealthServer

        health = HealthServer(worker, health_port, health_host)
    error = anyio.run(_run_with_signals, worker, health)
    raise typer.Exit(1 if error is not None else 0)


async def _run_with_signals(worker: Worker, health: HealthServer | None = None) -> Exception | None:
    """First SIGTERM/SIGINT: graceful shutdown. A second one: exit at once. With a health
    server, it listens before the worker starts and stops when the worker has stopped."""
    import os
    import signal

    import anyio

    result: list[Exception | None] = []
    health_listener = None
    if health is not None:
        try:
            health_listener = await health.listen()
        except OSError as exc:
            message = f"cannot serve health checks on {health.host}:{health.port}: {exc}"
            logging.getLogger("pgai").error("%s", message)
            return PgaiError(message)
    async with anyio.create_task_group() as tg:
        if health is not None:
            tg.start_soon(health.serve, health_listener)

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
