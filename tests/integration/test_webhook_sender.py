"""The webhook sender against a real HTTP receiver on loopback: the URL policy is checked
again at delivery (loopback refused unless allowed), and what arrives verifies with the
``standardwebhooks`` package."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from aegra.adapters.webhook import WebhookSender
from aegra.domain.webhook_outbox import Delivery
from aegra.domain.webhooks import UrlPolicy

SECRET = "whsec_" + base64.b64encode(b"sender-test-secret-0123456789abc").decode()


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
            data = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(({k.lower(): v for k, v in self.headers.items()}, data))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()


def _delivery(url: str) -> Delivery:
    return Delivery(id="6f0d3c1e-0000-4000-8000-000000000001", run_id="r1", url=url,
                    payload={"run_id": "r1", "status": "success"}, attempt=1,
                    window_left_s=60.0)


async def test_loopback_is_refused_at_delivery_unless_allowed(receiver):
    url, got = receiver
    refused = await WebhookSender(policy=UrlPolicy(), headers={}, secret=SECRET)(
        _delivery(url))
    assert refused.final and not refused.ok and "loopback" in (refused.error or "")
    assert got == []  # nothing was sent
    for policy in (UrlPolicy(disable_loopback=False),
                   UrlPolicy(allowed_domains=("127.0.0.1",))):
        sent = await WebhookSender(policy=policy, headers={"X-A": "1"}, secret=SECRET)(
            _delivery(url))
        assert sent.ok and sent.status_code == 204
    assert len(got) == 2
    headers, data = got[-1]
    assert headers["x-a"] == "1" and headers["content-type"] == "application/json"
    body = Webhook(SECRET).verify(data, headers)
    assert body["run_id"] == "r1" and body["webhook_sent_at"]
    assert headers["webhook-id"] == "6f0d3c1e-0000-4000-8000-000000000001"


async def test_a_receiver_that_is_down_is_a_retryable_failure():
    sender = WebhookSender(policy=UrlPolicy(disable_loopback=False), headers={},
                           timeout_s=2.0)
    result = await sender(_delivery("http://127.0.0.1:9/hook"))  # discard port: refused
    assert not result.ok and not result.final and result.error
