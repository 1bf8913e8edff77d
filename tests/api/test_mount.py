"""The http.app dispatcher in-process: routing between ours and the user's ASGI app, and
the lifespan fan-out (order, failure), driven with raw ASGI messages."""

from __future__ import annotations

from pathlib import Path

import trio

from aegra import config
from aegra.api.app import create_app
from aegra.api.deps import Deps
from aegra.api.mount import MountedApp, mount
from aegra.project import empty
from aegra.runtime.board import Board
from aegra.runtime.registry import RunRegistry


class UserApp:
    """A bare ASGI app recording what it saw; ``fail`` makes its startup fail."""

    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log = log
        self.fail = fail

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                phase = message["type"].rpartition(".")[2]
                self.log.append(f"user.{phase}")
                if self.fail:
                    await send({"type": f"lifespan.{phase}.failed", "message": "Trace\nboom"})
                    return
                await send({"type": f"lifespan.{phase}.complete"})
                if phase == "shutdown":
                    return
        self.log.append(f"user.{scope['method']} {scope['path']}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"user"})


def ours(log: list[str]):
    deps = Deps(config=config.load(None, {}).config, project=empty(Path(".")),
                board=Board(ready=True), registry=RunRegistry(), version="test")
    app = create_app(deps)

    @app.before_serving
    async def _up() -> None:
        log.append("ours.startup")

    @app.after_serving
    async def _down() -> None:
        log.append("ours.shutdown")

    return app


async def _request(app, method: str, path: str) -> tuple[int, bytes]:
    sent: list[dict] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await trio.sleep_forever()  # the client stays connected until the app is done

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"t")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    with trio.fail_after(5):
        await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


async def _lifespan(app, phases: list[str]) -> list[dict]:
    to_app, app_inbox = trio.open_memory_channel(10)
    app_outbox, from_app = trio.open_memory_channel(10)
    replies = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"}},
                           app_inbox.receive, app_outbox.send)
        for phase in phases:
            await to_app.send({"type": f"lifespan.{phase}"})
            with trio.fail_after(5):
                replies.append(await from_app.receive())
            if replies[-1]["type"].endswith("failed"):
                break
    return replies


async def test_routes_ours_first_then_the_users():
    log: list[str] = []
    app = mount(ours(log), UserApp(log))
    assert isinstance(app, MountedApp)
    status, body = await _request(app, "GET", "/ok")
    assert status == 200 and b'"ok"' in body
    assert await _request(app, "GET", "/custom/x") == (200, b"user")
    assert await _request(app, "POST", "/ok") == (200, b"user")  # our /ok is GET only
    assert log == ["user.GET /custom/x", "user.POST /ok"]


async def test_lifespan_reaches_both_in_order():
    log: list[str] = []
    replies = await _lifespan(mount(ours(log), UserApp(log)), ["startup", "shutdown"])
    assert [r["type"] for r in replies] == ["lifespan.startup.complete",
                                            "lifespan.shutdown.complete"]
    assert log == ["ours.startup", "user.startup", "user.shutdown", "ours.shutdown"]


async def test_user_startup_failure_fails_the_server():
    log: list[str] = []
    replies = await _lifespan(mount(ours(log), UserApp(log, fail=True)), ["startup"])
    assert replies == [{"type": "lifespan.startup.failed", "message": "http.app: boom"}]
    assert log == ["ours.startup", "user.startup"]


async def test_no_user_app_is_just_ours():
    app = ours([])
    assert mount(app, None) is app
