"""The durable webhook outbox with real ``aegra serve`` processes and a real receiver.

A receiver down for longer than the old retry window (three tries over ~3 s) still gets
exactly one successful delivery once it is back; deliveries are signed per Standard
Webhooks and verify with the ``standardwebhooks`` package; the body is the platform's;
aegra.json ``webhooks.headers`` are sent; the delivery log and redeliver work and hide
runs the caller may not see; an instance SIGKILLed mid-delivery is covered by another;
two instances never send the same attempt twice.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import _with_db, free_port
from tests.e2e.conftest import GRAPHS, ServerProcess, base_env, write_project

SECRET = "whsec_" + base64.b64encode(b"aegra-test-secret-32-bytes-long!").decode()
FAST = {  # short retry intervals, so minutes of outage fit in seconds
    "AEGRA_WEBHOOK_SECRET": SECRET, "AEGRA_WEBHOOK_POLL_INTERVAL_SECONDS": "0.2",
    "AEGRA_WEBHOOK_INITIAL_BACKOFF_SECONDS": "0.3", "AEGRA_WEBHOOK_MAX_BACKOFF_SECONDS": "0.6",
    "AEGRA_WEBHOOK_TIMEOUT_SECONDS": "1", "LG_WEBHOOK_TEAM": "blue"}
PROJECT = {"webhooks": {"url": {"allowed_domains": ["127.0.0.1"]},
                        "headers": {"X-Team": "${{ env.LG_WEBHOOK_TEAM }}"}}}


class Receiver:
    """A real HTTP receiver: ``/ok`` answers 200, ``/flaky`` 503 to each webhook-id's
    first two requests, ``/hold`` keeps requests open until ``release``."""

    def __init__(self, port: int | None = None) -> None:
        self.got: list[tuple[str, dict[str, str], bytes, int]] = []
        self.released = threading.Event()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
                data = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                code = 200
                with outer.lock:
                    seen = sum(1 for _, h, _, _ in outer.got
                               if h["webhook-id"] == headers["webhook-id"])
                    if self.path == "/flaky" and seen < 2:
                        code = 503
                    outer.got.append((self.path, headers, data, code))
                if self.path == "/hold":
                    outer.released.wait(30)
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def until(check: Any, within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {value!r})")
        time.sleep(0.05)


def _run(base: str, webhook: str, graph: str = "agent") -> dict[str, Any]:
    return httpx.post(f"{base}/runs", json={
        "assistant_id": graph, "webhook": webhook, "on_completion": "keep",
        "input": {"messages": [{"role": "user", "content": "hi"}]}}).json()


def _log(base: str, run_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/runs/{run_id}/webhooks")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def pair(pg_admin_dsn, tmp_path_factory):
    """Two instances on one database, started together; their ``X-Team`` header (from
    each one's environment) tells which sent a request."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    servers = []
    for team in ("blue", "green"):
        workdir = tmp_path_factory.mktemp(f"hooks-{team}")
        write_project(workdir, {"agent": f"{GRAPHS / 'echo.py'}:graph",
                                "slow": f"{GRAPHS / 'slow.py'}:graph"}, **PROJECT)
        env = base_env(_with_db(pg_admin_dsn, name), **{**FAST, "LG_WEBHOOK_TEAM": team})
        servers.append(ServerProcess(workdir, env).start(wait_ready=False))
    try:
        for one in servers:
            one.wait_ready()
        yield servers
    finally:
        for one in servers:
            one.stop()


@pytest.fixture(scope="module")
def server(pair):
    return pair[0]


@pytest.fixture(autouse=True)
def _logs(request, pair):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for one in pair:
            sys.stderr.write(f"\n--- server {one.port} log ---\n{one.logs()}\n")


def test_outage_then_exactly_one_signed_delivery_and_redeliver(server):
    port = free_port()  # nothing listens yet: the receiver is down
    run = _run(server.url, f"http://127.0.0.1:{port}/ok")
    rid, tid = run["run_id"], run["thread_id"]
    down_since = time.monotonic()
    # Longer than the old window (3 tries over ~3 s): refused attempts, still pending.
    log = until(lambda: time.monotonic() - down_since > 4.0 and [
        d for d in _log(server.url, rid) if len(d["attempts"]) >= 4])
    assert log[0]["status"] == "pending" and log[0]["next_attempt_at"] is not None
    assert all(a["status_code"] is None and a["error"] for a in log[0]["attempts"])
    receiver = Receiver(port)
    try:
        (done,) = until(lambda: [d for d in _log(server.url, rid)
                                 if d["status"] == "delivered"])
        assert done["next_attempt_at"] is None and done["last_status_code"] == 200
        (path, headers, data, code), = receiver.got  # exactly one, and nothing is due
        assert headers["webhook-id"] == done["webhook_id"]
        assert headers["x-team"] in ("blue", "green")  # aegra.json headers, env-templated
        body = Webhook(SECRET).verify(data, headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(data.replace(b'"success"', b'"error"'), headers)
        assert body["run_id"] == rid and body["thread_id"] == tid
        assert body["status"] == "success"
        assert body["values"]["messages"][-1]["content"] == "echo: hi"
        for key in ("run_started_at", "run_ended_at", "webhook_sent_at", "created_at"):
            assert body[key], key
        assert body["run_started_at"] <= body["run_ended_at"] < body["webhook_sent_at"]

        again = httpx.post(f"{server.url}/threads/{tid}/runs/{rid}/webhooks/redeliver")
        assert again.status_code == 202 and again.json()[0]["status"] == "pending"
        until(lambda: len(receiver.got) == 2)
        assert receiver.got[1][1]["webhook-id"] == done["webhook_id"]  # same idempotency key
        until(lambda: _log(server.url, rid)[0]["status"] == "delivered")
    finally:
        receiver.close()


def test_delivery_log_hides_unknown_runs_and_wrong_threads(server):
    receiver = Receiver()
    try:
        run = _run(server.url, receiver.url("/ok"))
        rid = run["run_id"]
        until(lambda: _log(server.url, rid)[0]["status"] == "delivered")
        other = httpx.post(f"{server.url}/threads", json={}).json()["thread_id"]
        for path in (f"/runs/{uuid.uuid4()}/webhooks",
                     f"/threads/{other}/runs/{rid}/webhooks",
                     f"/runs/{uuid.uuid4()}/webhooks/redeliver"):
            method = httpx.post if path.endswith("redeliver") else httpx.get
            assert method(server.url + path).status_code == 404, path
        ok = httpx.get(f"{server.url}/threads/{run['thread_id']}/runs/{rid}/webhooks")
        assert ok.status_code == 200 and ok.json()[0]["run_id"] == rid
    finally:
        receiver.close()


def test_an_interrupted_run_sends_its_threads_latest_values(server):
    receiver = Receiver()
    try:
        tid = httpx.post(f"{server.url}/threads", json={}).json()["thread_id"]
        run = httpx.post(f"{server.url}/threads/{tid}/runs", json={
            "assistant_id": "slow", "webhook": receiver.url("/ok"),
            "input": {"first": 0.05, "delay": 20}}).json()
        until(lambda: httpx.get(f"{server.url}/threads/{tid}/state").json()
              .get("values", {}).get("trail") == ["one:"])  # node one checkpointed
        cancelled = httpx.post(f"{server.url}/threads/{tid}/runs/{run['run_id']}/cancel")
        assert cancelled.status_code in (200, 202, 204), cancelled.text
        (_, _, data, _), = until(lambda: receiver.got)
        body = json.loads(data)
        assert body["status"] == "interrupted" and body["values"]["trail"] == ["one:"]
    finally:
        receiver.close()


def test_two_instances_never_send_the_same_attempt(pair):
    receiver = Receiver()
    try:
        runs = [_run(one.url, receiver.url("/flaky"))["run_id"] for one in pair * 4]
        logs = until(lambda: (ls := [_log(pair[0].url, r)[0] for r in runs])
                     and all(d["status"] == "delivered" for d in ls) and ls)
        per_id = Counter(h["webhook-id"] for _, h, _, _ in receiver.got)
        for d in logs:
            assert per_id[d["webhook_id"]] == 3 == len(d["attempts"])  # 503, 503, 200
            assert [a["attempt"] for a in d["attempts"]] == [1, 2, 3]
        oks = Counter(h["webhook-id"] for _, h, _, c in receiver.got if c == 200)
        assert set(oks.values()) == {1} and len(oks) == len(runs)
    finally:
        receiver.close()


def test_sigkill_mid_delivery_another_instance_delivers(pair):
    """Last in the module: it kills one of the pair."""
    receiver = Receiver()
    try:
        run = _run(pair[0].url, receiver.url("/hold"))
        (_, headers, _, _), = until(lambda: receiver.got)  # a POST in flight, held
        sender, survivor = pair if headers["x-team"] == "blue" else pair[::-1]
        assert sender.proc is not None
        sender.proc.kill()  # SIGKILL: that attempt's record is never written
        sender.proc.wait(5)
        receiver.released.set()
        (done,) = until(lambda: [d for d in _log(survivor.url, run["run_id"])
                                 if d["status"] == "delivered"])
        assert {h["webhook-id"] for _, h, _, _ in receiver.got} == {done["webhook_id"]}
        assert [a["attempt"] for a in done["attempts"]] == [2]  # the killed one: unlogged
        assert receiver.got[-1][1]["x-team"] != headers["x-team"]  # the other instance
    finally:
        receiver.close()
