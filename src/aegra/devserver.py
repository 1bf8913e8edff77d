"""``aegra dev``: the server as a child process, an embedded PostgreSQL, hot reload.

The parent never imports the server: it works out the environment, starts PostgreSQL when
none is configured, checks it accepts connections, then runs ``python -m aegra serve`` and
restarts it when a source file changes. A child process (rather than re-importing in
place) is the only reload that also picks up changed dependencies and module-level state.

The embedded PostgreSQL (``pgserver``) belongs to this parent process: it stops when the
parent exits (an ``atexit`` hook), and its data stays in ``<project>/.aegra/pgdata``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from aegra import config as cfgmod
from aegra import project as projmod
from aegra.localdb import Unusable, configured, embedded_dir, start_embedded
from aegra.preflight import EXIT_CANNOT_LISTEN, missing_project, port_in_use

# .tsx/.jsx/.ts/.css: aegra.json ``ui`` components; the restarted server rebuilds them.
WATCH_SUFFIXES = (".py", ".json", ".toml", ".tsx", ".jsx", ".ts", ".css")
SKIP_DIRS = {".aegra", ".venv", "venv", "node_modules", "__pycache__", ".git"}
POLL_S = 1.0  # mtime polling: no watcher dependency, cheap for a project-sized tree
TICK_S = 0.2  # how often the loop looks at the stop flag and the child
STOP_TIMEOUT_S = 10.0
DB_WAIT_S = 30.0


def say(line: str) -> None:
    print(f"aegra dev: {line}", flush=True)


def _fail(line: str) -> None:
    print(f"aegra: {line}", file=sys.stderr, flush=True)


def _mask(dsn: str) -> str:
    return re.sub(r"(//[^:/@]*:)[^@]+@", r"\1****@", dsn)


class _Stop:
    """SIGINT/SIGTERM set a flag: the loop then stops the child and returns 0, which also
    lets the embedded PostgreSQL's atexit hook run (a default SIGTERM would skip it)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            # None: the old handler was not installed from Python; the default is closest.
            signal.signal(sig, signal.SIG_DFL if old is None else old)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None


def snapshot(root: Path, extra: list[Path]) -> dict[str, int]:
    """mtime (ns) of every watched file; a changed, new or deleted key means a reload."""
    out: dict[str, int] = {}

    def files() -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            for name in filenames:
                if name.endswith(WATCH_SUFFIXES):
                    yield Path(dirpath, name)
        yield from extra

    for path in files():
        try:
            out[str(path)] = path.stat().st_mtime_ns
        except OSError:
            continue  # deleted between listing and stat: the next poll sees it gone
    return out


def changed(before: dict[str, int], after: dict[str, int]) -> str | None:
    for path in sorted(before.keys() | after.keys()):
        if before.get(path) != after.get(path):
            return path
    return None


def wait_for_database(dsn: str, stop: _Stop, wait_s: float = DB_WAIT_S) -> bool:
    """Retry a connection until it succeeds or ``wait_s`` has passed."""
    from aegra.adapters.postgres.embedded import probe

    say(f"checking PostgreSQL at {_mask(dsn)} ...")
    deadline = time.monotonic() + wait_s
    attempt, said_at = 0, -float("inf")
    while not stop.requested:
        attempt += 1
        error = probe(dsn)
        if error is None:
            say("PostgreSQL accepts connections")
            return True
        if time.monotonic() >= deadline:
            _fail(f"PostgreSQL is not reachable at {_mask(dsn)} after {wait_s:.0f}s: {error}."
                  " Check DATABASE_URL / POSTGRES_* (or unset them for an embedded one),"
                  " or pass --no-db-check.")
            return False
        if time.monotonic() - said_at >= 5:  # progress, without a line per retry
            said_at = time.monotonic()
            say(f"waiting for PostgreSQL (attempt {attempt}): {error}")
        time.sleep(min(2.0, 0.25 * attempt))
    return False


class Child:
    """One ``aegra serve`` process. Its own process group, so a Ctrl-C reaches only the
    parent, which then stops it once (a second signal would make it skip the drain)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, process_group=0)

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            say(f"server did not stop within {STOP_TIMEOUT_S:.0f}s: killing it")
            self.proc.kill()
            self.proc.wait()


def _environment(env_file: str, config: str | None, settings: str | None
                 ) -> tuple[dict[str, str], Path, str | None]:
    """The child's environment (real env > env file), the project root, and the database
    DSN if one is configured anywhere the child looks (env, aegra.json env, supervisor.toml).

    Read again before every (re)start, so an edited .env takes effect on reload."""
    env = dict(os.environ)
    path = Path(env_file)
    if path.is_file():
        projmod.apply_env(projmod.parse_dotenv(path.read_text()), env)
    env.setdefault("REDIS_BROKER_ENABLED", "false")  # dev runs in-process, no Redis needed
    env["AEGRA_DEV_MODE"] = "1"  # Studio's requests may pass custom auth (disable_studio_auth)
    project_file = projmod.find(config or env.get("AEGRA_CONFIG"))
    root = project_file.parent.resolve() if project_file else Path.cwd().resolve()
    seen = dict(env)
    if project_file is not None:
        projmod.apply_env(projmod.load(project_file).env, seen)
    loaded = cfgmod.load(settings, seen)
    return env, root, loaded.config.postgres.dsn() if configured(loaded.sources) else None


class DevServer:
    def __init__(self, *, host: str, port: int, config: str | None, env_file: str,
                 db_check: bool, settings: str | None, stop: _Stop) -> None:
        self.config, self.env_file, self.settings = config, env_file, settings
        self.db_check, self.stop = db_check, stop
        self.argv = [sys.executable, "-m", "aegra", "serve", "--host", host, "--port", str(port)]
        if config:
            self.argv += ["--config", config]
        if settings:
            self.argv += ["--settings", settings]
        self.root = Path.cwd().resolve()
        self.embedded: object | None = None  # pgserver handle: keeps the server ours
        self.embedded_dsn = ""

    def prepare(self) -> Child | None:
        """Environment + database for the next child; None (after saying why) if unusable."""
        try:
            env, self.root, dsn = _environment(self.env_file, self.config, self.settings)
        except cfgmod.ConfigError as exc:
            _fail(str(exc))
            return None
        if dsn is None:
            if self.embedded is None and not self._start_embedded():
                return None
            env["DATABASE_URL"] = dsn = self.embedded_dsn
        if self.db_check and not wait_for_database(dsn, self.stop):
            return None
        return Child(self.argv, env)

    def _start_embedded(self) -> bool:
        data = embedded_dir(self.root)
        say(f"starting embedded PostgreSQL in {os.path.relpath(data)} ...")
        try:
            self.embedded, self.embedded_dsn = start_embedded(data)
        except Unusable as exc:
            _fail(str(exc))
            return False
        say(f"PostgreSQL ready: {self.embedded_dsn}")
        return True


def run(*, host: str, port: int, config: str | None, env_file: str, db_check: bool,
        reload: bool, settings: str | None) -> int:
    """Run ``aegra dev`` until SIGINT/SIGTERM; the exit code."""
    problem = missing_project(config, env_file) or port_in_use(host, port)
    if problem is not None:
        _fail(problem)  # before anything is started or created
        return 2
    with _Stop() as stop:
        dev = DevServer(host=host, port=port, config=config, env_file=env_file,
                        db_check=db_check, settings=settings, stop=stop)
        child = dev.prepare()
        if stop.requested:
            return 0
        if child is None:
            return 1
        watched = [Path(env_file).resolve()] if reload else None
        return _loop(dev, child, watched)


def _loop(dev: DevServer, child: Child, watched: list[Path] | None) -> int:
    """Run the child; restart it on changes (``watched`` not None) until stopped."""
    stop, reload = dev.stop, watched is not None
    state = snapshot(dev.root, watched) if watched is not None else {}
    say(f"serving; watching {dev.root} for changes" if reload else "serving (no reload)")
    child.start()
    next_poll = time.monotonic() + POLL_S
    exited_with: int | None = None
    try:
        while not stop.requested:
            time.sleep(TICK_S)
            code = child.poll()
            if code is not None and exited_with is None:
                if watched is None or code == EXIT_CANNOT_LISTEN:
                    return code  # the child said why in one line
                exited_with = code
                say(f"server exited with code {code}; waiting for a file change to restart")
            if watched is None or time.monotonic() < next_poll:
                continue
            next_poll = time.monotonic() + POLL_S
            what = changed(state, snapshot(dev.root, watched))
            if what is None:
                continue
            # An editor's save is often several writes: let them land, restart once.
            time.sleep(TICK_S)
            state = snapshot(dev.root, watched)
            say(f"change detected in {os.path.relpath(what, dev.root)}: restarting")
            child.stop()
            exited_with = None
            new = dev.prepare()
            if new is None:
                exited_with = -1  # not startable (bad config, no database): wait for a fix
                say("not restarting until the next change")
                continue
            child = new
            child.start()
        say("stopping")
        return 0
    finally:
        child.stop()

