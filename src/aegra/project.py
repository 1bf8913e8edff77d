"""The user's project file: ``aegra.json`` in the ``langgraph.json`` format.

Keys understood: ``graphs`` (``./path/file.py:attr`` or ``package.module:attr``, or an
object with ``path``), ``dependencies`` (directories put on the import path), ``env`` (a
.env file or a mapping), ``http`` (``app``: a user ASGI app, plus CORS settings), ``auth``
and ``store`` (``index`` for semantic search, ``ttl``). Other ``langgraph.json`` keys
(``python_version``, ``dockerfile_lines``, ...) are accepted and ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec

from aegra.config import ConfigError

CANDIDATES = ("aegra.json", "langgraph.json")


class GraphSpec(msgspec.Struct, frozen=True, kw_only=True):
    graph_id: str
    target: str  # "./path/file.py" (resolved, absolute) or "package.module"
    attr: str
    is_file: bool
    description: str | None = None


class StoreIndexCfg(msgspec.Struct, frozen=True, kw_only=True):
    dims: int
    embed: str  # "module:attr", "./file.py:attr", or a "provider:model" string
    fields: list[str] | None = None


class StoreTtlCfg(msgspec.Struct, frozen=True, kw_only=True):
    default_ttl: float | None = None  # minutes
    refresh_on_read: bool = True
    sweep_interval_minutes: int | None = None


class StoreCfg(msgspec.Struct, frozen=True, kw_only=True):
    index: StoreIndexCfg | None = None
    ttl: StoreTtlCfg | None = None


class HttpProjectCfg(msgspec.Struct, frozen=True, kw_only=True):
    app: str | None = None
    cors: dict[str, Any] | None = None
    disable_meta: bool = False


class Project(msgspec.Struct, frozen=True, kw_only=True):
    root: Path
    source: str  # the file it came from, for error messages ("" when there is none)
    graphs: dict[str, GraphSpec] = {}
    dependencies: list[Path] = []
    env: dict[str, str] = {}
    http: HttpProjectCfg = HttpProjectCfg()
    auth: dict[str, Any] | None = None
    store: StoreCfg = StoreCfg()


def find(explicit: str | None, cwd: Path | None = None) -> Path | None:
    cwd = cwd or Path.cwd()
    if explicit:
        path = Path(explicit)
        if not path.is_absolute():
            path = cwd / path
        if not path.is_file():
            raise ConfigError(f"config error: server.graphs_file = {explicit!r}: file not found")
        return path
    for name in CANDIDATES:
        if (cwd / name).is_file():
            return cwd / name
    return None


def empty(root: Path | None = None) -> Project:
    return Project(root=root or Path.cwd(), source="")


def load(path: Path) -> Project:
    """Parse and validate the project file; every error names key, value and file."""
    src = path.name
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config error: {path}: invalid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config error: {path}: expected a JSON object at the top level")
    root = path.parent.resolve()

    graphs: dict[str, GraphSpec] = {}
    raw_graphs = raw.get("graphs", {})
    if not isinstance(raw_graphs, dict):
        raise ConfigError(f"config error: graphs = {raw_graphs!r} ({src}): expected an object")
    for graph_id, value in raw_graphs.items():
        graphs[graph_id] = _graph(graph_id, value, root, src)

    deps = []
    for dep in raw.get("dependencies", []) or []:
        if not isinstance(dep, str):
            raise ConfigError(f"config error: dependencies = {dep!r} ({src}): expected a string")
        dep_path = (root / dep).resolve()
        # "." and paths are import roots; anything else is a pip requirement for the image.
        if dep.startswith((".", "/")) or dep_path.exists():
            deps.append(dep_path)

    env = _env(raw.get("env"), root, src)
    try:
        http = msgspec.convert(raw.get("http") or {}, HttpProjectCfg)
        store = msgspec.convert(raw.get("store") or {}, StoreCfg)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"config error: {src}: {exc}") from None
    auth = raw.get("auth")
    if auth is not None and not isinstance(auth, dict):
        raise ConfigError(f"config error: auth = {auth!r} ({src}): expected an object")
    return Project(
        root=root, source=str(path), graphs=graphs, dependencies=deps, env=env,
        http=http, auth=auth, store=store,
    )


def _graph(graph_id: str, value: Any, root: Path, src: str) -> GraphSpec:
    description = None
    if isinstance(value, dict):
        description = value.get("description")
        value = value.get("path")
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(
            f"config error: graphs.{graph_id} = {value!r} ({src}): "
            "expected './path/file.py:attr' or 'package.module:attr'"
        )
    target, _, attr = value.rpartition(":")
    if not attr or not target:
        raise ConfigError(f"config error: graphs.{graph_id} = {value!r} ({src}): missing attribute")
    is_file = target.endswith(".py") or "/" in target or target.startswith(".")
    if is_file:
        file = (root / target).resolve()
        if not file.is_file():
            raise ConfigError(
                f"config error: graphs.{graph_id} = {value!r} ({src}): file {file} not found"
            )
        target = str(file)
    return GraphSpec(
        graph_id=graph_id, target=target, attr=attr, is_file=is_file, description=description
    )


def _env(value: Any, root: Path, src: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str):
        file = root / value
        if not file.is_file():
            raise ConfigError(f"config error: env = {value!r} ({src}): file {file} not found")
        return parse_dotenv(file.read_text())
    raise ConfigError(f"config error: env = {value!r} ({src}): expected a file name or an object")


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines; ``export``, comments and quotes handled; no interpolation."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, _, val = line.partition("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "'\"":
            val = val[1:-1]
        elif " #" in val:
            val = val.split(" #", 1)[0].rstrip()
        out[key.strip()] = val
    return out


def apply_env(values: dict[str, str], environ: dict[str, str] | None = None) -> None:
    """Set variables that are not already set: the real environment wins over files."""
    target = os.environ if environ is None else environ
    for key, val in values.items():
        target.setdefault(key, val)
