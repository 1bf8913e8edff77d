"""The user's ``langgraph_sdk.Auth``: loaded at startup, fail closed; called per request.

Loading (``load``) refuses to start the server, with one line naming the file and the
error, when ``AUTH_TYPE=custom`` (or aegra.json names ``auth.path``) and the module is
missing, fails to import, is not an ``Auth``, has no ``@auth.authenticate``, or that
function asks for a parameter the server cannot give. Unlike the reference product,
nothing here falls back to an open server.

``SdkAuth.authenticate`` calls the handler with the parameters it names (spec/auth.md
item 4) and turns every return shape into a ``Caller``; ``SdkAuth.authorize`` picks the
most specific ``@auth.on`` handler (item 7) and turns its result into a filter or an
error (item 8). Handlers are asyncio code written for LangGraph Platform, so they run on
the bridge loop; a sync ``authenticate`` runs in a worker thread.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any
from urllib.parse import parse_qsl

import trio
from langgraph_sdk import Auth
from langgraph_sdk.auth.exceptions import HTTPException as AuthHTTPException
from langgraph_sdk.auth.types import AuthContext, Handler, StudioUser

from aegra import imports, logs
from aegra.adapters import aio
from aegra.config import Config, ConfigError
from aegra.domain.auth import Caller, Filter, check_filter, user_dict
from aegra.domain.errors import DomainError, Forbidden
from aegra.project import Project

log = logs.get_logger("aegra.auth")

SUPPORTED = frozenset({"request", "body", "user", "path", "method", "scopes", "path_params",
                       "query_params", "headers", "authorization", "scope"})
RESOURCES = {"threads": ("create", "read", "update", "delete", "search", "create_run"),
             "assistants": ("create", "read", "update", "delete", "search"),
             "crons": ("create", "read", "update", "delete", "search"),
             "store": ("put", "get", "search", "delete", "list_namespaces")}


class AuthFailed(DomainError):
    """An ``HTTPException`` from a user handler: its status and headers are kept."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = {401: "unauthorized", 403: "forbidden"}.get(status, "error")
        self.headers = dict(headers or {})


def custom_enabled(cfg: Config, project: Project, sources: Mapping[str, str] | None) -> bool:
    """Custom auth when AUTH_TYPE says so, or when aegra.json names ``auth.path`` and
    nobody set AUTH_TYPE (as on the platform, where the config file alone turns it on)."""
    if cfg.auth.type == "custom":
        return True
    path = (project.auth or {}).get("path")
    explicit = (sources or {}).get("auth.type", "default") != "default"
    if path and explicit:
        log.warning("auth.disabled_by_config", path=path, auth_type="noop",
                    hint="aegra.json names auth.path but AUTH_TYPE=noop: nothing is "
                         "authenticated; set AUTH_TYPE=custom to use it")
    return bool(path) and not explicit


def load(cfg: Config, project: Project, sources: Mapping[str, str] | None = None,
         *, dev: bool = False) -> SdkAuth | None:
    """The configured ``SdkAuth``, or None for ``AUTH_TYPE=noop``; ConfigError otherwise."""
    if not custom_enabled(cfg, project, sources):
        return None
    section = project.auth or {}
    where = project.source or "aegra.json"
    spec = section.get("path")
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"config error: auth.path ({where}): AUTH_TYPE=custom needs "
                          "\"auth\": {\"path\": \"./auth.py:auth\"} in the project file")
    try:
        obj = imports.load(spec, project.root)
    except imports.TargetError as exc:
        raise ConfigError(f"config error: auth.path = {spec!r} ({where}): {exc}") from None
    if not isinstance(obj, Auth):
        raise ConfigError(f"config error: auth.path = {spec!r} ({where}): expected a "
                          f"langgraph_sdk.Auth instance, got {type(obj).__name__}")
    fn = obj._authenticate_handler
    if fn is None:
        raise ConfigError(f"config error: auth.path = {spec!r} ({where}): the Auth object "
                          "has no @auth.authenticate handler")
    params = inspect.signature(fn).parameters
    unknown = [n for n, p in params.items() if n not in SUPPORTED and p.default is p.empty]
    if unknown:
        raise ConfigError(f"config error: auth.path = {spec!r} ({where}): authenticate "
                          f"asks for {', '.join(unknown)}; supported: "
                          f"{', '.join(sorted(SUPPORTED))}")
    studio = dev and not section.get("disable_studio_auth", False)
    auth = SdkAuth(obj, studio=studio)
    missing = auth.unhandled()
    if missing:
        log.warning("auth.unhandled_actions", allowed_without_filter=missing)
    log.info("auth.loaded", path=spec, studio_bypass=studio)
    return auth


class User:
    """``ctx.user`` and ``langgraph_auth_user``: attributes and keys both work, as the
    platform's proxy user does; ``dict()`` is the plain form."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def identity(self) -> str:
        return str(self._data["identity"])

    @property
    def is_authenticated(self) -> bool:
        return bool(self._data.get("is_authenticated", True))

    @property
    def display_name(self) -> str:
        return str(self._data.get("display_name", self.identity))

    @property
    def permissions(self) -> list[str]:
        return list(self._data.get("permissions") or [])

    def __getattr__(self, name: str) -> object:
        try:
            return self.__dict__["_data"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: object = None) -> object:
        return self._data.get(key, default)

    def keys(self) -> KeysView[str]:
        return self._data.keys()

    def items(self) -> ItemsView[str, Any]:
        return self._data.items()

    def values(self) -> ValuesView[Any]:
        return self._data.values()

    def dict(self) -> dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        return f"User({self._data!r})"


def caller_from(response: object) -> Caller:
    """Every return shape of ``authenticate`` (spec/auth.md item 5) as a Caller."""
    if isinstance(response, tuple):
        if len(response) != 2:
            raise ValueError("authenticate returned a tuple that is not (permissions, user)")
        permissions, user = response
    elif isinstance(response, Mapping):
        permissions, user = response.get("permissions") or [], response
    else:
        permissions, user = getattr(response, "permissions", None) or [], response
    if isinstance(user, str):
        identity, extra = user, {}
    elif isinstance(user, Mapping) and "identity" in user:
        identity, extra = str(user["identity"]), dict(user)
    elif hasattr(user, "identity"):
        identity = str(user.identity)
        raw = user.dict() if callable(getattr(user, "dict", None)) else {}
        extra = {**raw, **{k: getattr(user, k) for k in ("display_name", "is_authenticated")
                           if hasattr(user, k)}}
    else:
        raise ValueError("authenticate must return an identity: a string, a dict with "
                         f"'identity', or an object with .identity; got {type(user).__name__}")
    perms = tuple(str(p) for p in permissions)
    data = user_dict(identity, perms, extra)
    handle = user if hasattr(user, "identity") and not isinstance(user, Mapping) else User(data)
    return Caller(identity=identity, permissions=perms, user=data, handle=handle)


class SdkAuth:
    """Authentication and authorization through the user's ``Auth`` object."""

    enabled = True

    def __init__(self, auth: Auth, *, studio: bool = False) -> None:
        self.auth = auth
        self.studio = studio
        fn = auth._authenticate_handler
        assert fn is not None  # load() checked
        self._fn: Callable[..., Any] = fn
        self._async = inspect.iscoroutinefunction(fn)
        self.wants = frozenset(inspect.signature(fn).parameters) & SUPPORTED
        self._handlers: dict[tuple[str, str], Handler | None] = {}

    @property
    def wants_body(self) -> bool:
        return "body" in self.wants

    def unhandled(self) -> list[str]:
        """(resource, action) pairs no handler covers: allowed without a filter."""
        if self.auth._global_handlers or ("*", "*") in self.auth._handlers:
            return []
        return [f"{r}.{a}" for r, actions in RESOURCES.items() for a in actions
                if self._handler(r, a) is None]

    async def authenticate(self, scope: Mapping[str, Any], *, body: object = None,
                           request: object = None, path_params: dict[str, str] | None = None
                           ) -> Caller:
        headers = {bytes(k).lower(): bytes(v) for k, v in scope.get("headers") or ()}
        if self.studio and headers.get(b"x-auth-scheme") == b"langsmith":
            user = StudioUser("langgraph-studio-user", is_authenticated=True)
            return Caller(identity=user.identity, permissions=tuple(user.permissions),
                          user=user_dict(user.identity, tuple(user.permissions),
                                         {"kind": "StudioUser"}),
                          handle=user, studio=True)
        args = self._arguments(scope, headers, body, request, path_params)
        try:
            if self._async:
                response = await aio.call(self._fn, **args)
            else:
                response = await trio.to_thread.run_sync(lambda: self._fn(**args))
        except AuthHTTPException as exc:
            status = 401 if exc.status_code == 401 else 403
            raise AuthFailed(status, str(exc.detail), exc.headers) from None
        return caller_from(response)

    def _arguments(self, scope: Mapping[str, Any], headers: dict[bytes, bytes], body: object,
                   request: object, path_params: dict[str, str] | None) -> dict[str, Any]:
        wants = self.wants
        values: dict[str, Any] = {}
        if "authorization" in wants:
            raw = headers.get(b"authorization")
            values["authorization"] = raw.decode("latin-1") if raw is not None else None
        if "headers" in wants:
            values["headers"] = headers
        if "method" in wants:
            values["method"] = scope.get("method", "GET")
        if "path" in wants:
            values["path"] = scope.get("path", "/")
        if "query_params" in wants:
            query = bytes(scope.get("query_string") or b"").decode("latin-1")
            values["query_params"] = dict(parse_qsl(query, keep_blank_values=True))
        if "path_params" in wants:
            values["path_params"] = path_params or {}
        if "scope" in wants:
            values["scope"] = scope
        if "scopes" in wants:
            values["scopes"] = []
        if "user" in wants:
            values["user"] = None
        if "body" in wants:
            values["body"] = body
        if "request" in wants:
            values["request"] = request
        return values

    def _handler(self, resource: str, action: str) -> Handler | None:
        key = (resource, action)
        if key not in self._handlers:
            found = None
            for candidate in (key, (resource, "*"), ("*", action), ("*", "*")):
                if candidate in self.auth._handlers:
                    found = self.auth._handlers[candidate][-1]
                    break
            if found is None and self.auth._global_handlers:
                found = self.auth._global_handlers[-1]
            self._handlers[key] = found
        return self._handlers[key]

    async def authorize(self, caller: Caller, resource: str, action: str,
                        value: dict[str, Any]) -> Filter | None:
        handler = self._handler(resource, action)
        if handler is None:
            return None
        user = caller.handle if caller.handle is not None else User(caller.user)
        ctx = AuthContext(permissions=list(caller.permissions), user=user,
                          resource=resource, action=action)  # type: ignore[arg-type]
        try:
            result = await aio.call(handler, ctx=ctx, value=value)
        except AuthHTTPException as exc:
            raise AuthFailed(exc.status_code, str(exc.detail), exc.headers) from None
        except AssertionError as exc:
            raise Forbidden(str(exc) or "Forbidden") from None
        if result is None or result is True:
            return None
        if result is False:
            raise Forbidden("Forbidden")
        return check_filter(result)


class NoAuth:
    """``AUTH_TYPE=noop``: every caller may do everything; no handler runs."""

    enabled = False

    async def authorize(self, caller: Caller, resource: str, action: str,
                        value: dict[str, Any]) -> Filter | None:
        return None
