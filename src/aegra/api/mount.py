"""Custom routes: the user's ASGI app named by aegra.json ``http.app`` served beside ours.

``MountedApp`` is the ASGI entry point when a user app is configured. An HTTP or
websocket request goes to our Quart app when its path and method match one of our
rules (Quart's url_map), otherwise to the user app, so our routes always win and the
user's fill every other path. FastAPI/Starlette apps run on Trio through anyio.

Lifespan is fanned out to both apps: ours starts first and stops last (the user's
startup may call our endpoints); either app's ``failed`` reply fails the whole phase,
so a user app whose startup raises stops the server. An app that does not speak
lifespan (raises or returns at once) is treated as having nothing to do, as hypercorn
itself does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec
import trio
from hypercorn.typing import Framework
from quart import Quart
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect, WebsocketMismatch

from aegra import imports
from aegra.config import ConfigError
from aegra.domain.errors import DomainError
from aegra.domain.ports import Authenticator
from aegra.logs import get_logger
from aegra.project import Project

log = get_logger("aegra.http")

Message = dict[str, Any]
# ASGI with plain dicts (hypercorn's TypedDict scopes and events are these dicts).
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]


def load_user_app(project: Project) -> ASGIApp | None:
    """Import ``http.app``; any failure is a one-line ConfigError naming key and value."""
    spec = project.http.app
    if not spec:
        return None
    try:
        app = imports.load(spec, project.root)
    except imports.TargetError as exc:
        raise ConfigError(f"config error: http.app = {spec!r} "
                          f"({project.source or 'aegra.json'}): {exc}") from None
    if not callable(app):
        raise ConfigError(f"config error: http.app = {spec!r} ({project.source or 'aegra.json'})"
                          f": {type(app).__name__} is not an ASGI application")
    return cast(ASGIApp, app)  # callable: taken at its word until it is called


def mount(ours: Quart, user: ASGIApp | None, authenticator: Authenticator | None = None
          ) -> Framework:
    """The ASGI app to serve: ours alone, or ours beside the user's. With an
    ``authenticator`` (``http.enable_custom_route_auth``) the user's routes are
    authenticated too."""
    if user is None:
        return ours
    ours.extensions["openapi_extra_paths"], ours.extensions["openapi_extra_schemas"] = (
        _user_openapi(user))
    return cast(Framework, MountedApp(ours, user, authenticator))  # see Receive, Send


def _user_openapi(user: ASGIApp) -> tuple[dict[str, Any], dict[str, Any]]:
    build = getattr(user, "openapi", None)
    if not callable(build):
        return {}, {}
    try:
        doc = build()
    except Exception as exc:  # noqa: BLE001  a broken user schema must not stop serving
        log.warning("http.app.openapi_failed", error=repr(exc))
        return {}, {}
    schemas = (doc.get("components") or {}).get("schemas") or {}
    return dict(doc.get("paths") or {}), dict(schemas)


class _Credentials:
    """``scope["auth"]`` as Starlette's AuthenticationMiddleware leaves it."""

    def __init__(self, scopes: list[str]) -> None:
        self.scopes = scopes


class MountedApp:
    def __init__(self, ours: Quart, user: ASGIApp, authenticator: Authenticator | None = None
                 ) -> None:
        self.ours = ours
        self.user = user
        self.authenticator = authenticator

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
        elif kind in ("http", "websocket") and not self._is_ours(scope):
            if self.authenticator is not None:
                scope = await self._authenticated(scope, send)
                if not scope:
                    return
            await self.user(scope, receive, send)
        else:
            await self.ours(scope, receive, send)  # type: ignore[arg-type]

    async def _authenticated(self, scope: Message, send: Send) -> Message:
        """The scope with ``user`` and ``auth`` set, or {} once a 401/403 was sent."""
        assert self.authenticator is not None
        try:
            caller = await self.authenticator.authenticate(scope)
        except DomainError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return {}
            headers = [(b"content-type", b"application/json")]
            headers += [(k.lower().encode(), v.encode())
                        for k, v in (getattr(exc, "headers", None) or {}).items()]
            await send({"type": "http.response.start", "status": exc.status,
                        "headers": headers})
            await send({"type": "http.response.body",
                        "body": msgspec.json.encode({"detail": exc.message})})
            return {}
        return {**scope, "user": caller.handle, "auth": _Credentials(list(caller.permissions))}

    def _is_ours(self, scope: Message) -> bool:
        path = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        websocket = scope["type"] == "websocket"
        adapter = self.ours.url_map.bind("localhost")
        try:
            adapter.match(path, method="GET" if websocket else scope["method"],
                          websocket=websocket)
        except RequestRedirect:
            return True  # ours, e.g. a missing trailing slash; Quart answers the redirect
        except (NotFound, MethodNotAllowed, WebsocketMismatch):
            return False
        return True

    async def _lifespan(self, scope: Message, receive: Receive, send: Send) -> None:
        peers = [_Peer("aegra", cast(ASGIApp, self.ours)), _Peer("http.app", self.user)]
        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(peer.run, scope)
            while True:
                message = await receive()
                phase = message["type"].rpartition(".")[2]  # "startup" | "shutdown"
                order = peers if phase == "startup" else peers[::-1]
                failed: Message | None = None
                for peer in order:
                    reply = await peer.exchange(message)
                    if reply["type"].endswith(".failed") and failed is None:
                        # Starlette puts a whole traceback in the message; its last line
                        # says what went wrong, and the operator gets one line.
                        lines = str(reply.get("message") or "failed").strip().splitlines()
                        failed = {**reply, "message": f"{peer.name}: {lines[-1]}"}
                        if phase == "startup":
                            break  # do not start the user app on a failed server
                await send(failed or {"type": f"lifespan.{phase}.complete"})
                if phase == "shutdown" or failed is not None:
                    for peer in peers:
                        peer.close()
                    return


class _Peer:
    """One app's side of the lifespan protocol, fed through memory channels (capacity 1:
    the protocol is strictly request/reply, so at most one message is ever in flight)."""

    def __init__(self, name: str, app: ASGIApp) -> None:
        self.name = name
        self.app = app
        self._to_app, self._app_inbox = trio.open_memory_channel[Message](1)
        self._app_outbox, self._from_app = trio.open_memory_channel[Message](1)

    async def run(self, scope: Message) -> None:
        try:
            await self.app(scope, self._app_inbox.receive, self._app_outbox.send)
        except trio.EndOfChannel:
            pass  # we closed its inbox after shutdown (or after a failed startup)
        except Exception as exc:  # noqa: BLE001  no lifespan support, or failed: logged
            log.info("http.lifespan_ended", app=self.name, error=repr(exc))
        finally:
            self._app_outbox.close()

    async def exchange(self, message: Message) -> Message:
        done = {"type": message["type"] + ".complete"}
        try:
            await self._to_app.send(message)
            return await self._from_app.receive()
        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
            return done  # the app left the protocol: nothing to start or stop

    def close(self) -> None:
        self._to_app.close()
