"""The ``aegra`` command (typer): serve | dev | up | down | db … | init | version."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # the CLI imports its modules lazily: `aegra --help` stays quick
    from aegra.config import Config, Loaded
    from aegra.project import Project

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="aegra: a self-hosted LangGraph agent server on Trio.")
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
app.add_typer(db_app, name="db")

ConfigOpt = Annotated[str | None, typer.Option(
    "--config", "-c", help="Path to aegra.json (default: aegra.json or langgraph.json here).")]
SettingsOpt = Annotated[str | None, typer.Option(
    "--settings", help="Path to supervisor.toml (default: ./supervisor.toml if present).",
    envvar="AEGRA_SETTINGS")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"aegra: {message}", err=True)
    return typer.Exit(code)


def _load(config: str | None, settings: str | None, env_file: str | None = ".env",
          flags: dict[str, object] | None = None) -> tuple[Loaded, Project]:
    """.env -> aegra.json env -> settings; returns (Loaded, Project) or exits with one line."""
    from aegra import config as cfgmod
    from aegra import project as projmod

    try:
        if env_file and Path(env_file).is_file():
            projmod.apply_env(projmod.parse_dotenv(Path(env_file).read_text()))
        path = projmod.find(config or os.environ.get("AEGRA_CONFIG"))
        project = projmod.load(path) if path else projmod.empty()
        projmod.apply_env(project.env)
        loaded = cfgmod.load(settings, cli=flags)
    except cfgmod.ConfigError as exc:
        raise _fail(str(exc)) from None
    return loaded, project


def _flags(host: str | None, port: int | None) -> dict[str, object]:
    out: dict[str, object] = {}
    if host is not None:
        out["server.host"] = host
    if port is not None:
        out["server.port"] = port
    return out


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Host to bind (default: 0.0.0.0)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default: 2026)")] = None,
    config: ConfigOpt = None,
    settings: SettingsOpt = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Print the merged settings with their sources and exit.")] = False,
) -> None:
    """Run the server (production: no services are started for you)."""
    import aegra.adapters.aio  # noqa: F401  (trio_asyncio before psycopg_pool: docs/architecture.md, Layers)

    loaded, project = _load(config, settings, flags=_flags(host, port))
    if check:
        for key, value, source in loaded.describe():
            typer.echo(f"{key:<40} {value:<40} {source}")
        source = project.source or "(none)"
        typer.echo(f"{'project':<40} {source:<40} graphs={sorted(project.graphs)}")
        return
    _run_server(loaded.config, project, loaded.sources)


def _run_server(cfg: Config, project: Project, sources: dict[str, str]) -> None:
    from functools import partial

    import trio

    from aegra import logs
    from aegra.config import ConfigError
    from aegra.domain.errors import StoreUnavailable
    from aegra.preflight import EXIT_CANNOT_LISTEN
    from aegra.supervisor.boot import serve as boot_serve
    from aegra.supervisor.http import BindFailed
    from aegra.supervisor.policy import CrashLoop

    logs.setup(cfg.log.level, cfg.log.format)
    if not project.source:
        logs.get_logger("aegra.cli").warning(
            "project.missing", hint="no aegra.json or langgraph.json here: serving no graphs")
    try:
        trio.run(partial(boot_serve, cfg, project, sources=sources))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except BaseException as exc:  # noqa: BLE001  one line for the operator, details in the log
        leaf = exc
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, (StoreUnavailable, CrashLoop, ConfigError)):
            raise _fail(str(leaf), 1) from None
        if isinstance(leaf, BindFailed):
            raise _fail(str(leaf), EXIT_CANNOT_LISTEN) from None
        if isinstance(leaf, SystemExit):
            raise
        logs.get_logger("aegra.cli").critical("server.crashed", error=repr(leaf), exc_info=leaf)
        raise _fail(f"server crashed: {leaf!r}", 1) from None


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="Host to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 2026,
    config: ConfigOpt = None,
    env_file: Annotated[str, typer.Option("--env-file", "-e", help="Path to .env file")] = ".env",
    no_db_check: Annotated[bool, typer.Option(
        "--no-db-check", help="Skip the database readiness check")] = False,
    reload: Annotated[bool, typer.Option(help="Restart on source changes")] = True,
    settings: SettingsOpt = None,
) -> None:
    """Local development: embedded PostgreSQL when none is configured, hot reload."""
    from aegra import devserver

    raise typer.Exit(devserver.run(host=host, port=port, config=config, env_file=env_file,
                                   db_check=not no_db_check, reload=reload, settings=settings))


@app.command()
def up(
    build: Annotated[bool, typer.Option("--build/--no-build", help="Build images first")] = True,
    file: Annotated[str | None, typer.Option("--file", "-f", help="Compose file")] = None,
    services: Annotated[list[str] | None, typer.Argument(help="Services to start")] = None,
) -> None:
    """Start PostgreSQL, Redis and the app with Docker Compose."""
    from aegra import compose

    raise typer.Exit(compose.up(file=file, build=build, services=services or []))


@app.command()
def down(
    volumes: Annotated[bool, typer.Option("--volumes", help="Also remove data volumes")] = False,
    file: Annotated[str | None, typer.Option("--file", "-f", help="Compose file")] = None,
) -> None:
    """Stop the Docker Compose stack."""
    from aegra import compose

    raise typer.Exit(compose.down(file=file, volumes=volumes))


def _dsn(settings: str | None) -> str:
    loaded, _ = _load(None, settings)
    return loaded.config.postgres.dsn()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head",
               settings: SettingsOpt = None) -> None:
    """Apply migrations (ours and LangGraph's checkpointer/store tables)."""
    from aegra.adapters.langgraph.schema import ensure_langgraph_tables
    from aegra.adapters.postgres import migrate

    dsn = _dsn(settings)
    typer.echo(f"upgrading to {revision} ...")
    migrate.upgrade(dsn, revision, out=typer.echo)
    typer.echo("checking LangGraph checkpointer/store tables ...")
    changed = ensure_langgraph_tables(dsn)
    typer.echo(f"LangGraph tables {'upgraded' if changed else 'already current'}")
    typer.echo(f"database at {migrate.current(dsn)}")


@db_app.command("current")
def db_current(settings: SettingsOpt = None) -> None:
    """Show the current revision."""
    from aegra.adapters.postgres import migrate

    rev = migrate.current(_dsn(settings))
    head = migrate.head()
    typer.echo(f"{rev or '(none)'}{' (head)' if rev == head else ''}")


@db_app.command("history")
def db_history(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Show the migration history."""
    from aegra.adapters.postgres import migrate

    migrate.history(verbose, typer.echo)


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target, e.g. -1 or base")],
                 settings: SettingsOpt = None) -> None:
    """Roll back to a revision."""
    from aegra.adapters.postgres import migrate

    dsn = _dsn(settings)
    typer.echo(f"downgrading to {revision} ...")
    migrate.downgrade(dsn, revision, out=typer.echo)
    typer.echo(f"database at {migrate.current(dsn) or '(base)'}")


@app.command()
def init(path: Annotated[str, typer.Argument(help="Project folder")] = ".") -> None:
    """Scaffold a project: aegra.json, a sample graph (no API key needed), .env.example."""
    from aegra import scaffold

    for line in scaffold.create(Path(path)):
        typer.echo(line)


@app.command()
def version() -> None:
    """Print the version."""
    from aegra import __version__

    typer.echo(f"aegra {__version__}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
