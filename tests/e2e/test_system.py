"""System endpoints of a real `aegra serve` process."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import base_env


def test_health_ready_info_metrics(start_server, database_url):
    server = start_server(base_env(database_url))
    health = httpx.get(server.url + "/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "healthy"
    # Operations §1: the runbook's plain strings; redis only with REDIS_BROKER_ENABLED.
    assert body["components"] == {"database": "healthy", "workers": "healthy"}
    assert body["details"]["actors"]["http"]["status"] == "running"
    assert httpx.get(server.url + "/ready").json() == {"status": "ready"}
    assert httpx.get(server.url + "/live").json() == {"status": "alive"}
    assert httpx.get(server.url + "/ok").json() == {"ok": True}
    info = httpx.get(server.url + "/info").json()
    assert body["version"] == info["version"] and info["version"]
    assert info["flags"]["assistants"] is True
    assert info["graphs"] == ["agent"]
    missing = httpx.get(server.url + "/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found" and missing.json()["detail"]
    metrics = httpx.get(server.url + "/metrics")
    assert metrics.status_code == 200
    assert 'aegra_http_requests_total{method="GET",route="/info",status="200"} 1.0' in metrics.text
    assert "aegra_http_request_duration_seconds_bucket" in metrics.text
    spec = httpx.get(server.url + "/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/health" in spec["paths"]
    assert "swagger" in httpx.get(server.url + "/docs").text.lower()
    cors = httpx.options(server.url + "/info", headers={
        "Origin": "http://studio.example", "Access-Control-Request-Method": "GET"})
    assert "Location" in cors.headers["access-control-expose-headers"]


def test_metrics_can_be_turned_off(start_server, database_url):
    server = start_server(base_env(database_url, ENABLE_PROMETHEUS_METRICS="false"))
    assert httpx.get(server.url + "/metrics").status_code == 404
    assert httpx.get(server.url + "/info").json()["features"]["metrics"] is False
