"""Generative UI endpoints, as Agent Chat UI's ``LoadExternalComponent`` calls them.

``POST /ui/{name}`` with ``{"name": <component>}`` answers the HTML fragment (``<link>``
for the bundle's CSS, ``<script>`` whose onload renders the component); ``GET
/ui/{name}/{path}`` serves the bundle's files. Not registered with ``http.disable_ui``;
a name that aegra.json's ``ui`` does not list is 404. With custom auth the POST is
authenticated and the GETs are open (``api/auth.py``), as on the platform.
"""

from __future__ import annotations

import msgspec
from quart import Blueprint, Response, request

from aegra.api import wire
from aegra.api.auth import caller
from aegra.api.deps import services
from aegra.domain.errors import NotFound
from aegra.services.ui import UiService

bp = Blueprint("ui", __name__)


class ComponentRequest(msgspec.Struct, kw_only=True):
    name: str  # the component, a key of the bundle's default export; other keys ignored


def _ui() -> UiService:
    found = services().ui
    if found is None:  # ui configured nowhere: the platform answers 404 too
        raise NotFound("UI is not configured on this server")
    return found


@bp.post("/ui/<name>")
async def component(name: str) -> Response:
    """The HTML fragment that loads one component of the bundle ``name``."""
    body = await wire.body(ComponentRequest)
    html = _ui().fragment(caller(), name, body.name, request.root_path.rstrip("/"))
    return Response(html, content_type="text/html; charset=utf-8")


@bp.get("/ui/<name>/<path:path>")
async def asset(name: str, path: str) -> Response:
    """One file of a built bundle (its script, stylesheet, source map)."""
    data, content_type = await _ui().asset(name, path)
    return Response(data, content_type=content_type,
                    headers={"X-Content-Type-Options": "nosniff"})
