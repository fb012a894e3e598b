"""The ``pgai`` command line: ``pgai install`` and the ``pgai vectorizer`` commands."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from pgai import __version__
from pgai.catalog.installer import AlreadyInstalledError, install
from pgai.database import DEFAULT_DB_URL
from pgai.errors import PgaiError

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


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper().replace("WARN", "WARNING").replace("WARNINGING", "WARNING"),
        format="%(asctime)s [%(levelname)-8s] %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


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
    _configure_logging("INFO")
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


def main() -> None:
    """Console-script entry point."""
    app()
