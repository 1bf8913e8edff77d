"""``/ui`` in process over in-memory bundles: the fragment, the assets, what is 404, and
authentication as on the platform (POST authenticated, asset GETs open). The real build
and a real browser-style load are tests/e2e/test_ui.py's."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from aegra import config
from aegra.adapters.memory.ui import MemoryUiAssets
from aegra.api.app import create_app
from aegra.api.deps import Deps
from aegra.domain.ports import Authenticator
from aegra.project import HttpProjectCfg, empty
from aegra.runtime.board import Board
from aegra.runtime.registry import RunRegistry
from aegra.services.ui import UiService
from tests.api.conftest import Api, BearerAuthenticator

JS = b"var __LGUI_agent = (() => ({ render() {} }))();"
FILES = {"agent": {"entrypoint.js": JS, "entrypoint.css": b".card{}"}}


def _client(api: Api, *, disable_ui: bool = False,
            authenticator: Authenticator | None = None) -> Any:
    services = dataclasses.replace(api.services, ui=UiService(MemoryUiAssets(FILES)))
    project = msgspec.structs.replace(empty(Path(".")),
                                      http=HttpProjectCfg(disable_ui=disable_ui))
    deps = Deps(config=config.load(None, {}).config, project=project, board=Board(ready=True),
                registry=RunRegistry(), version="test", services=services,
                authenticator=authenticator)
    return create_app(deps).test_client()


async def test_fragment_and_assets(make_api: Callable[..., Awaitable[Api]]) -> None:
    client = _client(await make_api())
    response = await client.post("/ui/agent", json={"name": "card", "props": {"x": 1}})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    html = await response.get_data(as_text=True)
    assert html.splitlines() == [
        '<script src="/ui/agent/entrypoint.js" onload=\'__LGUI_agent.render(&quot;card&quot;, '
        '"{{shadowRootId}}")\'></script>',
        '<link rel="stylesheet" href="/ui/agent/entrypoint.css" />']
    js = await client.get("/ui/agent/entrypoint.js")
    assert js.status_code == 200 and await js.get_data() == JS
    assert js.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert js.headers["X-Content-Type-Options"] == "nosniff"
    css = await client.get("/ui/agent/entrypoint.css")
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"


async def test_unknown_and_bad_requests(make_api: Callable[..., Awaitable[Api]]) -> None:
    client = _client(await make_api())
    assert (await client.post("/ui/other", json={"name": "card"})).status_code == 404
    assert (await client.get("/ui/other/entrypoint.js")).status_code == 404
    assert (await client.get("/ui/agent/missing.js")).status_code == 404
    assert (await client.get("/ui/agent/../agent/entrypoint.js")).status_code == 404
    bad = await client.post("/ui/agent", json={"name": 3})
    assert bad.status_code == 422 and (await bad.get_json())["detail"].count("name")
    assert (await client.post("/ui/agent", json={})).status_code == 422


async def test_without_ui_configured_everything_is_404(make_api: Callable[..., Awaitable[Api]]
                                                       ) -> None:
    api = await make_api()  # services.ui is None: aegra.json has no ``ui``
    assert (await api.client.post("/ui/agent", json={"name": "card"})).status_code == 404
    assert (await api.client.get("/ui/agent/entrypoint.js")).status_code == 404


async def test_disable_ui_removes_the_routes(make_api: Callable[..., Awaitable[Api]]) -> None:
    client = _client(await make_api(), disable_ui=True)
    assert (await client.post("/ui/agent", json={"name": "card"})).status_code == 404
    assert (await client.get("/ui/agent/entrypoint.js")).status_code == 404
    assert (await client.post("/assistants/search", json={})).status_code == 200


async def test_post_is_authenticated_and_assets_are_open(
        make_api: Callable[..., Awaitable[Api]]) -> None:
    client = _client(await make_api(owner_auth=True), authenticator=BearerAuthenticator())
    assert (await client.post("/ui/agent", json={"name": "card"})).status_code == 401
    ok = await client.post("/ui/agent", json={"name": "card"},
                           headers={"Authorization": "Bearer alice"})
    assert ok.status_code == 200
    # <script src> and <link href> carry no credentials: the files are open, as on the
    # platform; anything else under /ui is not.
    assert (await client.get("/ui/agent/entrypoint.js")).status_code == 200
    assert (await client.get("/ui/other/entrypoint.js")).status_code == 404
    assert (await client.delete("/ui/agent/entrypoint.js")).status_code == 401


async def test_fragment_urls_carry_the_mount_prefix(make_api: Callable[..., Awaitable[Api]]
                                                    ) -> None:
    client = _client(await make_api())
    # As api/prefix.py hands a request under http.mount_prefix to the app.
    response = await client.post("/lg/ui/agent", root_path="/lg", json={"name": "card"})
    assert response.status_code == 200
    html = await response.get_data(as_text=True)
    assert '<script src="/lg/ui/agent/entrypoint.js"' in html
    assert '<link rel="stylesheet" href="/lg/ui/agent/entrypoint.css" />' in html
    js = await client.get("/lg/ui/agent/entrypoint.js", root_path="/lg")
    assert js.status_code == 200
    authed = _client(await make_api(owner_auth=True), authenticator=BearerAuthenticator())
    js = await authed.get("/lg/ui/agent/entrypoint.js", root_path="/lg")
    assert js.status_code == 200  # open under the prefix too
