"""Which PostgreSQL a command run on this machine talks to.

``aegra dev``, ``aegra db …`` and ``aegra doctor`` resolve it the same way, so a
migration or a check always reaches the database the dev server uses:

1. ``DATABASE_URL`` or ``POSTGRES_HOST`` set anywhere the server reads settings (the
   environment, ``.env``, aegra.json ``env``, ``supervisor.toml``): that server.
2. Otherwise the embedded PostgreSQL in ``<project>/.aegra/pgdata`` that ``aegra dev``
   starts. A command attaches to it when it runs, or starts it and stops it again when
   the command exits (pgserver stops the server when its last user exits).
3. Neither: the defaults (``localhost:5432/aegra``), exactly as ``aegra serve`` would.

Whether step 2 may *create* the data folder is the caller's choice: ``aegra dev`` and
``aegra db`` in a project folder do (dev would); ``aegra doctor`` never does.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from aegra.adapters.postgres.dsn import url_problem
from aegra.config import Loaded

EMBEDDED_DIR = Path(".aegra") / "pgdata"
DATABASE_KEYS = ("postgres.url", "postgres.host")


class Unusable(Exception):
    """No usable database: a malformed URL, or the embedded server did not start.
    ``str()`` is the operator's one line."""


class Target(NamedTuple):
    dsn: str
    where: str  # for the operator: which database this is and why
    handle: object | None  # the embedded server's handle (keeps it ours until exit)


def configured(sources: Mapping[str, str]) -> bool:
    """Whether any settings source names a database server."""
    return any(sources.get(key, "default") != "default" for key in DATABASE_KEYS)


def embedded_dir(root: Path) -> Path:
    return root / EMBEDDED_DIR


def resolve(loaded: Loaded, root: Path, *, create: bool) -> Target:
    """The database for a local command; Unusable when there is none."""
    if configured(loaded.sources):
        source = next(loaded.sources[k] for k in DATABASE_KEYS
                      if loaded.sources.get(k, "default") != "default")
        dsn = loaded.config.postgres.dsn()
        problem = url_problem(dsn)
        if problem is not None:
            raise Unusable(f"{problem} ({source})")
        return Target(dsn, source, None)
    data = embedded_dir(root)
    if create or (data / "PG_VERSION").is_file():
        handle, dsn = start_embedded(data)
        return Target(dsn, f"embedded PostgreSQL in {_shown(data)}", handle)
    return Target(loaded.config.postgres.dsn(), "default settings (no DATABASE_URL)", None)


def start_embedded(data: Path, database: str = "aegra") -> tuple[object, str]:
    """Start (or attach to) the embedded server in ``data``: (handle, DSN)."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns on import when XDG_RUNTIME_DIR is unset (containers,
            # sudo): pgserver then uses /tmp, which is fine, so keep the console clean.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
            from aegra.adapters.postgres import embedded

            forget_dead_handles(data)
            return embedded.start(data, database)
    except Exception as exc:  # noqa: BLE001  pgserver raises bare subprocess errors
        raise Unusable(
            f"embedded PostgreSQL did not start in {_shown(data)}: {exc!r}") from None


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def forget_dead_handles(data: Path) -> None:
    """Drop pids of dead processes from pgserver's handle list.

    pgserver stops the server when the *last* process holding a handle exits, and it never
    prunes that list: after one ``aegra dev`` was killed (SIGKILL, crash), every later one
    would leave PostgreSQL running on exit. Only dead pids are removed, so another live
    ``aegra dev`` on the same project keeps the server it shares.
    """
    handles = data / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    return True
