"""Hostile and malformed requests against a real server: never a 500, always a JSON error
body the SDK can read (``detail``/``message``), naming the offending field or id."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import base_env

LIMIT = 64 * 1024


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"] == body["message"]
    return body


def _chunks(total: int, size: int = 8192):
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_hostile_bodies(start_server, database_url):
    server = start_server(base_env(database_url, AEGRA__HTTP__MAX_BODY_BYTES=str(LIMIT)))
    c = httpx.Client(base_url=server.url, timeout=30)
    item = {"namespace": ["v"], "key": "k", "value": {"t": "x"}}

    # Too large: a JSON 413, whether the size is announced or the body is chunked.
    big = b'{"namespace":["v"],"key":"k","value":{"t":"' + b"x" * (LIMIT + 10) + b'"}}'
    body = _error(c.put("/store/items", content=big,
                        headers={"content-type": "application/json"}), 413)
    assert body["error"] == "payload_too_large"
    chunked = c.put("/store/items", content=_chunks(4 * LIMIT),
                    headers={"content-type": "application/json"})
    assert "content-length" not in chunked.request.headers
    assert "bytes" in _error(chunked, 413)["detail"]
    # Far past the limit (the server stops reading; the client still gets the 413).
    _error(c.put("/store/items", content=b"x" * (32 * LIMIT)), 413)
    _error(c.put("/store/items", content=_chunks(32 * LIMIT, 65536)), 413)
    # The connection pool survives; a body just under the limit is fine.
    ok = b'{"namespace":["v"],"key":"k","value":{"t":"' + b"y" * (LIMIT - 100) + b'"}}'
    assert c.put("/store/items", content=ok).status_code == 204

    # Malformed JSON: 422 naming the body.
    for raw in (b"{bad", b'{"namespace": ["v"], "key": "k", "value": {', b"\xff\xfe",
                b'{"a": "\x00"}', b"[1, 2", b"nul"):
        body = _error(c.put("/store/items", content=raw,
                            headers={"content-type": "application/json"}), 422)
        assert body["field"] == "body" and "body" in body["detail"]
    # Valid JSON of the wrong shape: 422 naming the field.
    assert _error(c.put("/store/items", json=[item]), 422)["field"] == "body"
    assert _error(c.put("/store/items", json={**item, "namespace": "v"}),
                  422)["field"] == "namespace"
    assert _error(c.put("/store/items", json={**item, "key": 7}), 422)["field"] == "key"

    # Deep nesting: 10,000 levels (objects or arrays) and just past our bound are a 422.
    for depth in (10_000, 100):
        deep = b'{"a":' * depth + b"1" + b"}" * depth
        wrapped = b'{"namespace":["v"],"key":"d","value":' + deep + b"}"
        assert _error(c.put("/store/items", content=wrapped), 422)["field"] == "body"
        arrays = b"[" * depth + b"]" * depth
        _error(c.post("/store/items/search", content=arrays), 422)
    nested = {"l": {"l": {"l": {"l": "fine"}}}}
    assert c.put("/store/items", json={**item, "key": "n", "value": nested}).status_code == 204

    # NUL characters: stripped before they reach PostgreSQL (text/JSONB cannot hold them).
    nul = {"namespace": ["v\u0000"], "key": "n\u0000ul", "value": {"t\u0000": "a\u0000b",
                                                                       "l": ["\u0000"]}}
    assert c.put("/store/items", json=nul).status_code == 204
    got = c.get("/store/items", params={"namespace": "v", "key": "nul"})
    assert got.status_code == 200 and got.json()["value"] == {"t": "ab", "l": [""]}
    assert c.get("/store/items", params={"namespace": "v\u0000", "key": "n\u0000ul"}
                 ).json()["key"] == "nul"
    found = c.post("/store/items/search", json={"namespace_prefix": ["v"],
                                                "filter": {"t": "a\u0000b"}})
    assert found.status_code == 200 and [i["key"] for i in found.json()["items"]] == ["nul"]
    assert c.put("/store/items", json={**item, "key": "\u0000"}).status_code == 422

    # Studio sends JSON as text/plain.
    assert c.put("/store/items", content=httpx.Request("PUT", "/", json=item).content,
                 headers={"content-type": "text/plain;charset=utf-8"}).status_code == 204


def test_unknown_ids_and_routes(start_server, database_url):
    server = start_server(base_env(database_url))
    c = httpx.Client(base_url=server.url)
    unknown = str(uuid.uuid4())
    for path in (f"/threads/{unknown}", f"/assistants/{unknown}",
                 f"/threads/{unknown}/runs/{unknown}"):
        body = _error(c.get(path), 404)
        assert unknown in body["detail"], (path, body)
    body = _error(c.get("/store/items", params={"namespace": "a.b", "key": "ghost"}), 404)
    assert "ghost" in body["detail"] and body["field"] == "key"
    body = _error(c.get("/no/such/route"), 404)
    assert "/no/such/route" in body["detail"]
    body = _error(c.patch("/store/items", json={}), 405)
    assert body["error"] == "method_not_allowed"
    # Answering before reading the body must not leave the keep-alive connection stuck
    # mid-request (it did for ~30% of these pairs): the next request on it still works.
    for _ in range(15):
        with httpx.Client(base_url=server.url, timeout=3) as fresh:
            assert fresh.patch("/store/items", json={"x": 1}).status_code == 405
            assert fresh.get("/ok").status_code == 200
            assert fresh.post(f"/threads/{unknown}/runs", json={"x": 1}).status_code in (
                404, 422)
            assert fresh.request("GET", "/ok", json={"x": 1}).status_code == 200
            assert fresh.get("/ok").status_code == 200
    # The LangGraph root label is reserved: a 422, not a 500.
    _error(c.put("/store/items", json={"namespace": ["langgraph"], "key": "k",
                                       "value": {}}), 422)
    # A run config's typed keys are checked up front (the run would only fail later).
    tid = c.post("/threads", json={}).json()["thread_id"]
    for config, field in (({"tags": 5}, "config.tags"),
                          ({"recursion_limit": 0}, "config.recursion_limit"),
                          ({"recursion_limit": 2**63}, "config.recursion_limit"),
                          ({"configurable": 5}, "config.configurable")):
        for path in (f"/threads/{tid}/runs", "/runs/wait", "/runs/crons"):
            body = {"assistant_id": "agent", "input": {}, "config": config,
                    "schedule": "0 0 1 1 *"}
            assert _error(c.post(path, json=body), 422)["field"] == field, (path, config)
        assert _error(c.post("/assistants", json={"graph_id": "agent", "config": config}),
                      422)["field"] == field
    assert c.get(f"/threads/{tid}/runs").json() == []  # nothing was written
