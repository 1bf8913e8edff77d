"""The user's project file: ``aegra.json`` in the ``langgraph.json`` format.

Keys understood: ``graphs`` (``./path/file.py:attr`` or ``package.module:attr``, or an
object with ``path``), ``dependencies`` (directories put on the import path), ``env`` (a
.env file or a mapping), ``http`` (``app``: a user ASGI app; ``cors``: Starlette
CORSMiddleware's keys), ``auth``, ``store`` (``index`` for semantic search, ``ttl``),
``checkpointer.ttl`` (thread TTL sweeps, docs/ttl.md) and ``webhooks`` (``url``: the
URL policy of ``domain/webhooks.py``; ``headers`` sent with every delivery,
``${{ env.NAME }}`` allowed for names starting with ``env_prefix``).
Other ``langgraph.json`` keys (``python_version``, ``dockerfile_lines``, ...) are accepted
and ignored.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from aegra.config import ConfigError
from aegra.domain.threads import MAX_TTL_MINUTES
from aegra.domain.webhooks import UrlPolicy

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


class CheckpointerTtlCfg(msgspec.Struct, frozen=True, kw_only=True,
                         forbid_unknown_fields=True):
    """``checkpointer.ttl`` (docs/ttl.md): minutes, as on the platform."""
    strategy: Literal["delete", "keep_latest"] = "delete"
    default_ttl: Annotated[float, msgspec.Meta(gt=0, le=MAX_TTL_MINUTES)] | None = None
    sweep_interval_minutes: Annotated[float, msgspec.Meta(gt=0)] | None = None
    sweep_limit: int | None = None  # the platform's; here [sweeper] batch_size bounds work


class CheckpointerCfg(msgspec.Struct, frozen=True, kw_only=True):
    ttl: CheckpointerTtlCfg | None = None  # other keys (serde, ...) are accepted, ignored


class StoreCfg(msgspec.Struct, frozen=True, kw_only=True):
    index: StoreIndexCfg | None = None
    ttl: StoreTtlCfg | None = None


class CorsCfg(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``http.cors``; unset keys keep the permissive defaults, not Starlette's GET-only."""
    allow_origins: tuple[str, ...] | None = None  # None: the http.cors_allow_origins setting
    allow_origin_regex: str | None = None
    allow_methods: tuple[str, ...] = ("*",)
    allow_headers: tuple[str, ...] = ("*",)
    allow_credentials: bool = False
    expose_headers: tuple[str, ...] = ()
    max_age: int = 600


class HeaderPatterns(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``http.configurable_headers``/``logging_headers``: case-insensitive glob patterns
    (``include``/``exclude`` are aliases the platform also reads)."""
    includes: tuple[str, ...] | None = None
    excludes: tuple[str, ...] | None = None
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None

    def rules(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(includes, excludes), the platform's way: the plural key wins when non-empty."""
        return self.includes or self.include or (), self.excludes or self.exclude or ()


class HttpProjectCfg(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``http`` of ``langgraph.json``: every key the platform documents; others are refused."""
    app: str | None = None
    cors: CorsCfg | None = None
    disable_assistants: bool = False
    disable_threads: bool = False
    disable_runs: bool = False
    disable_store: bool = False
    disable_meta: bool = False
    disable_webhooks: bool = False
    disable_ui: bool = False
    disable_mcp: bool = False
    disable_a2a: bool = False
    # Turns off only the v2 event streaming routes (disable_runs turns them off too).
    disable_event_streaming: bool = False
    mount_prefix: str | None = None
    configurable_headers: HeaderPatterns | None = None
    logging_headers: HeaderPatterns | None = None
    # Custom routes are outside auth unless this is true (as on the platform); then the
    # authenticated user is in the ASGI scope ("user", "auth") the user's app sees.
    enable_custom_route_auth: bool = False
    middleware_order: str | None = None  # "auth_first" | "middleware_first"


class WebhooksCfg(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    env_prefix: str = "LG_WEBHOOK_"
    url: UrlPolicy = UrlPolicy()
    headers: dict[str, str] = {}


class Project(msgspec.Struct, frozen=True, kw_only=True):
    root: Path
    source: str  # the file it came from, for error messages ("" when there is none)
    graphs: dict[str, GraphSpec] = {}
    dependencies: list[Path] = []
    env: dict[str, str] = {}
    http: HttpProjectCfg = HttpProjectCfg()
    auth: dict[str, Any] | None = None
    store: StoreCfg = StoreCfg()
    checkpointer: CheckpointerCfg = CheckpointerCfg()
    webhooks: WebhooksCfg = WebhooksCfg()
    # Generative UI: component bundle name -> the .tsx/.jsx file exporting its components
    # (resolved, absolute); ``ui_config.shared``: packages shared with the host page.
    ui: dict[str, Path] = {}
    ui_shared: tuple[str, ...] = ()


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
    http = _convert("http", raw.get("http") or {}, HttpProjectCfg, src)
    if http.cors is not None:
        _check_cors(http.cors, src)
    if http.mount_prefix is not None:
        http = msgspec.structs.replace(http, mount_prefix=_mount_prefix(http.mount_prefix, src))
    webhooks = _convert("webhooks", raw.get("webhooks") or {}, WebhooksCfg, src)
    if webhooks.url.max_url_length < 1:
        raise ConfigError(f"config error: webhooks.url.max_url_length = "
                          f"{webhooks.url.max_url_length!r} ({src}): must be >= 1")
    try:
        store = msgspec.convert(raw.get("store") or {}, StoreCfg)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"config error: {src}: {exc}") from None
    checkpointer = _convert("checkpointer", raw.get("checkpointer") or {}, CheckpointerCfg, src)
    auth = raw.get("auth")
    if auth is not None and not isinstance(auth, dict):
        raise ConfigError(f"config error: auth = {auth!r} ({src}): expected an object")
    ui, ui_shared = _ui(raw.get("ui"), raw.get("ui_config"), root, src)
    return Project(
        root=root, source=str(path), graphs=graphs, dependencies=deps, env=env,
        http=http, auth=auth, store=store, checkpointer=checkpointer, webhooks=webhooks,
        ui=ui, ui_shared=ui_shared,
    )


def _ui(raw: object, raw_config: object, root: Path,
        src: str) -> tuple[dict[str, Path], tuple[str, ...]]:
    """``ui`` (name -> component file) and ``ui_config.shared``, checked and resolved."""
    if raw is None:
        return {}, ()
    if not isinstance(raw, dict):
        raise ConfigError(f"config error: ui = {raw!r} ({src}): expected an object of "
                          "name -> path to a .tsx/.jsx file")
    ui: dict[str, Path] = {}
    for name, value in raw.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise ConfigError(f"config error: ui.{name} ({src}): a name of letters, "
                              "digits, '_' or '-'")
        if not isinstance(value, str):
            raise ConfigError(f"config error: ui.{name} = {value!r} ({src}): expected a path")
        path = (root / value).resolve()
        if not path.is_file():
            raise ConfigError(f"config error: ui.{name} = {value!r} ({src}): file not found")
        ui[name] = path
    shared: tuple[str, ...] = ()
    if raw_config is not None:
        if not isinstance(raw_config, dict) or set(raw_config) - {"shared"}:
            raise ConfigError(f"config error: ui_config = {raw_config!r} ({src}): "
                              "expected an object with 'shared' only")
        values = raw_config.get("shared") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(f"config error: ui_config.shared = {values!r} ({src}): "
                              "expected a list of package names")
        shared = tuple(values)
    return ui, shared


_ERR_AT = re.compile(r"^(.*?)(?: - at `\$((?:\.[A-Za-z0-9_]+|\[\d+\]|\[\.\.\.\])*)`)?$")
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_T = TypeVar("_T")
_TOKEN = re.compile(r"\*|[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s?#]+$", re.IGNORECASE)


def _convert(key: str, value: object, cls: type[_T], src: str) -> _T:
    """``msgspec.convert`` whose error is one line naming the dotted key and its value."""
    try:
        return msgspec.convert(value, cls)
    except msgspec.ValidationError as exc:
        match = _ERR_AT.match(str(exc))
        reason, path = (match.group(1), match.group(2) or "") if match else (str(exc), "")
        unknown = _UNKNOWN_FIELD.search(reason)
        if unknown:
            path, reason = f"{path}.{unknown.group(1)}", "unknown setting"
        found: Any = value
        for part in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
            name, index = part
            try:
                found = found[int(index)] if index else found[name]
            except (KeyError, IndexError, TypeError):
                found = None
                break
        dotted = key + re.sub(r"\[(\d+)\]", r".\1", path.replace("[...]", ""))
        raise ConfigError(f"config error: {dotted} = {found!r} ({src}): "
                          f"{reason[0].lower()}{reason[1:]}") from None


_PREFIX = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+")


def _mount_prefix(value: str, src: str) -> str | None:
    """``http.mount_prefix``: '/segment[/segment...]'. As on the platform one trailing '/'
    is dropped and '' or '/' means no prefix."""
    prefix = value[:-1] if value.endswith("/") else value
    if not prefix:
        return None
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(f"config error: http.mount_prefix = {value!r} ({src}): expected a "
                          "path like '/my-deployment/api' (starts with '/', no '?', '#', "
                          "spaces or empty segments)")
    return prefix


def _check_cors(cors: CorsCfg, src: str) -> None:
    def bad(key: str, value: object, why: str) -> ConfigError:
        return ConfigError(f"config error: http.cors.{key} = {value!r} ({src}): {why}")

    for origin in cors.allow_origins or ():
        if origin != "*" and not _ORIGIN.match(origin):
            raise bad("allow_origins", origin,
                      "expected '*' or an origin like 'https://app.example.com' (no path)")
    if cors.allow_origin_regex is not None:
        try:
            re.compile(cors.allow_origin_regex)
        except re.error as exc:
            raise bad("allow_origin_regex", cors.allow_origin_regex,
                      f"not a regular expression: {exc}") from None
    for method in cors.allow_methods:
        if not re.fullmatch(r"\*|[A-Za-z]+", method):
            raise bad("allow_methods", method, "expected an HTTP method name or '*'")
    for key in ("allow_headers", "expose_headers"):
        for header in getattr(cors, key):
            if not _TOKEN.fullmatch(header):
                raise bad(key, header, "expected a header name or '*'")
    if cors.max_age < 0:
        raise bad("max_age", cors.max_age, "must be >= 0")


def _graph(graph_id: str, value: object, root: Path, src: str) -> GraphSpec:
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


def _env(value: object, root: Path, src: str) -> dict[str, str]:
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
