"""``/openapi.json`` built from the routes the app really has, plus ``/docs``.

Handlers may carry ``__aegra_doc__`` (set by ``documented``) with request/response
msgspec types; their JSON Schemas go into ``components``. A user ASGI app mounted through
``http.app`` contributes its own paths (issue #3).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar, get_args

import msgspec
from quart import Quart

F = TypeVar("F", bound=Callable[..., Any])
_PARAM = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>")


def documented(*, body: object = None, response: object = None, tag: str | None = None,
               status: int = 200) -> Callable[[F], F]:
    def wrap(fn: F) -> F:
        fn.__aegra_doc__ = {"body": body, "response": response, "tag": tag,  # type: ignore[attr-defined]
                            "status": status}
        return fn
    return wrap


def build(app: Quart, title: str, version: str,
          extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    types: list[Any] = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions.get(rule.endpoint)
        doc = getattr(view, "__aegra_doc__", {}) or {}
        path = _PARAM.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "operationId": f"{rule.endpoint}_{method.lower()}",
                "summary": (view.__doc__ or rule.endpoint).strip().splitlines()[0] if view else "",
                "responses": {str(doc.get("status", 200)): {"description": "OK"}},
            }
            if doc.get("tag"):
                op["tags"] = [doc["tag"]]
            params = _PARAM.findall(rule.rule)
            if params:
                op["parameters"] = [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                    for p in params
                ]
            if doc.get("body") is not None:
                types.append(doc["body"])
                op["requestBody"] = {"content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{_name(doc['body'])}"}}}}
            if doc.get("response") is not None:
                types.append(doc["response"])
                op["responses"][str(doc.get("status", 200))]["content"] = {
                    "application/json": {"schema": _ref(doc["response"])}}
            paths.setdefault(path, {})[method.lower()] = op
    for path, ops in (extra_paths or {}).items():
        for method, op in ops.items():
            paths.setdefault(path, {}).setdefault(method, op)
    components: dict[str, Any] = {}
    if types:
        _, components = msgspec.json.schema_components(
            types, ref_template="#/components/schemas/{name}")
    # The user app's schemas (mount.py), so the $refs in its merged paths resolve.
    for name, schema in (app.extensions.get("openapi_extra_schemas") or {}).items():
        components.setdefault(name, schema)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": components},
    }


def _name(tp: object) -> str:
    return getattr(tp, "__name__", str(tp))


def _ref(tp: object) -> dict[str, Any]:
    origin = getattr(tp, "__origin__", None)
    if origin is list:
        return {"type": "array", "items": _ref(get_args(tp)[0])}
    return {"$ref": f"#/components/schemas/{_name(tp)}"}


DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title} API</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "openapi.json", dom_id: "#ui"}});</script>
</body></html>"""
