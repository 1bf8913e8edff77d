"""The ``aegra`` command (typer): serve | dev | up | down | db … | doctor | export | import |
init | version."""

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
    processes: Annotated[str, typer.Option(
        "--processes", help="Server processes behind one port: a number, or auto (the"
        " usable cores). Above 1 needs Redis.")] = "1",
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
    if processes != "1":  # a parent of N full servers: supervisor/processes.py
        from aegra.config import ConfigError
        from aegra.supervisor import processes as multi

        try:
            n = multi.count(processes)
        except ConfigError as exc:
            raise _fail(str(exc)) from None
        if n > 1:
            raise typer.Exit(multi.main(n, loaded.config, sys.argv[1:]))
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
    """``aegra dev``'s database (aegra.localdb): the configured one, else the embedded one
    of this project (started for this command when dev is not running, stopped after)."""
    from aegra import localdb

    loaded, project = _load(None, settings)
    try:
        target = localdb.resolve(loaded, project.root, create=bool(project.source))
    except localdb.Unusable as exc:
        raise _fail(str(exc), 1) from None
    if target.handle is not None:
        typer.echo(f"aegra: using the {target.where}", err=True)
    return target.dsn


@app.command()
def doctor(
    config: ConfigOpt = None,
    settings: SettingsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document, for scripts.")
                       ] = False,
) -> None:
    """Check a live deployment: connections, size, queue, leases, migrations, Redis."""
    from aegra import doctor as doc

    loaded, project = _load(config, settings)
    checks = doc.diagnose(loaded, project.root)
    if as_json:
        typer.echo(doc.as_json(checks).decode())
    else:
        for line in doc.render(checks):
            typer.echo(line)
    raise typer.Exit(1 if doc.failed(checks) else 0)


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


# ignore_unknown_options: a relative target such as ``-1`` is an argument, not a flag.
@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target, e.g. -1 or base")],
                 settings: SettingsOpt = None) -> None:
    """Roll back to a revision."""
    from aegra.adapters.postgres import migrate

    dsn = _dsn(settings)
    typer.echo(f"downgrading to {revision} ...")
    migrate.downgrade(dsn, revision, out=typer.echo)
    typer.echo(f"database at {migrate.current(dsn) or '(base)'}")


@app.command("export")
def export_(out: Annotated[str, typer.Option("--out", "-o", help=(
                "File to write (JSON lines; gzip when it ends in .gz)."))],
            settings: SettingsOpt = None) -> None:
    """Logical backup: threads, checkpoints, store items, assistants, crons to one file."""
    from aegra import backup

    try:
        counts = backup.export(_dsn(settings), Path(out),
                               lambda line: typer.echo(line, err=True))
    except backup.BackupError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"exported {sum(counts.values())} rows to {out}", err=True)


@app.command("import")
def import_(file: Annotated[str, typer.Argument(help="A file written by aegra export")],
            skip_existing: Annotated[bool, typer.Option(
                "--skip-existing", help="Keep rows already here; import the rest.")] = False,
            overwrite: Annotated[bool, typer.Option(
                "--overwrite", help="Replace rows already here with the file's.")] = False,
            settings: SettingsOpt = None) -> None:
    """Load a backup file (migrating the database first); refuses on existing ids."""
    from aegra import backup

    if skip_existing and overwrite:
        raise _fail("--skip-existing and --overwrite exclude each other")
    mode: backup.OnConflict = ("skip" if skip_existing else "overwrite" if overwrite
                               else "error")
    try:
        counts = backup.import_(_dsn(settings), Path(file), mode,
                                lambda line: typer.echo(line, err=True))
    except backup.BackupError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"imported {sum(counts.values())} rows from {file}", err=True)


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
    except Exception as exc:  # one line for the operator, never a traceback
        if os.environ.get("AEGRA_TRACEBACK"):
            raise
        from aegra.adapters.postgres.migrate import explain

        line = explain(exc) or f"unexpected error: {exc!r} (AEGRA_TRACEBACK=1 shows where)"
        sys.exit(f"aegra: {line}")
