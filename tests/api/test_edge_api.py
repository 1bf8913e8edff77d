"""The HTTP edge in-process: CORS from configuration, X-Request-ID, bounded metric labels,
webhook URLs refused before anything is written, credentials masked in run JSON."""

from __future__ import annotations

from pathlib import Path

from aegra import config
from aegra.api.app import create_app
from aegra.api.deps import Deps
from aegra.api.metrics import Metrics
from aegra.api.run_models import run_json
from aegra.project import CorsCfg, HttpProjectCfg, Project
from aegra.runtime.board import Board
from aegra.runtime.registry import RunRegistry

APP = "https://app.example.com"
EVIL = "https://evil.example"


def make_app(cors: CorsCfg | None = None, env: dict[str, str] | None = None,
             metrics: Metrics | None = None):
    project = Project(root=Path("."), source="", http=HttpProjectCfg(cors=cors))
    deps = Deps(config=config.load(None, env or {}).config, project=project,
                board=Board(ready=True), registry=RunRegistry(), version="test")
    return create_app(deps, metrics)


def preflight(origin: str, method: str = "POST", headers: str | None = None) -> dict[str, str]:
    out = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        out["Access-Control-Request-Headers"] = headers
    return out


async def test_default_cors_is_any_origin_without_credentials():
    client = make_app().test_client()
    response = await client.get("/ok", headers={"Origin": EVIL})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    answer = await client.options("/threads", headers=preflight(EVIL, "POST", "x-api-key"))
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert answer.headers["Access-Control-Allow-Headers"] == "x-api-key"
    assert "Location" in answer.headers["Access-Control-Expose-Headers"]


async def test_configured_origins_credentials_and_refusals():
    client = make_app(CorsCfg(allow_origins=(APP,), allow_credentials=True,
                              allow_methods=("GET", "POST"), max_age=120)).test_client()
    ok = await client.get("/ok", headers={"Origin": APP})
    assert ok.headers["Access-Control-Allow-Origin"] == APP
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in ok.headers["Vary"]
    evil = await client.get("/ok", headers={"Origin": EVIL})
    assert evil.status_code == 200  # served, but the browser will not hand it over
    assert "Access-Control-Allow-Origin" not in evil.headers
    assert "Access-Control-Allow-Credentials" not in evil.headers

    answer = await client.options("/threads/t1/runs", headers=preflight(APP))
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    assert answer.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert answer.headers["Access-Control-Max-Age"] == "120"
    refused = await client.options("/threads", headers=preflight(EVIL))
    assert refused.status_code == 400
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert (await refused.get_data()) == b"Disallowed CORS origin"
    bad_method = await client.options("/threads", headers=preflight(APP, "DELETE"))
    assert bad_method.status_code == 400


async def test_star_with_credentials_never_sends_credentials():
    client = make_app(CorsCfg(allow_origins=("*",), allow_credentials=True)).test_client()
    for response in (await client.get("/ok", headers={"Origin": EVIL}),
                     await client.options("/ok", headers=preflight(EVIL))):
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers


async def test_setting_origins_apply_without_http_cors():
    env = {"AEGRA__HTTP__CORS_ALLOW_ORIGINS": f"{APP}, https://other.example"}
    client = make_app(env=env).test_client()
    ok = await client.get("/ok", headers={"Origin": APP})
    assert ok.headers["Access-Control-Allow-Origin"] == APP
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Access-Control-Allow-Origin" not in (
        await client.get("/ok", headers={"Origin": EVIL})).headers


async def test_request_id_only_short_and_plain():
    client = make_app().test_client()
    kept = await client.get("/ok", headers={"X-Request-ID": "req-1.a_b"})
    assert kept.headers["X-Request-ID"] == "req-1.a_b"
    for bad in ("x" * 129, "a b", "<script>"):
        fresh = await client.get("/ok", headers={"X-Request-ID": bad})
        assert fresh.headers["X-Request-ID"] != bad
        assert len(fresh.headers["X-Request-ID"]) == 32


async def test_unusual_methods_are_one_metric_label():
    metrics = Metrics()
    client = make_app(metrics=metrics).test_client()
    for method in ("PROPFIND", "BREW", "GET"):
        await client.open("/info", method=method)
    labels = {sample.labels["method"] for family in metrics.requests.collect()
              for sample in family.samples}
    assert labels == {"OTHER", "GET"}


async def test_webhook_to_loopback_is_refused_before_anything_is_written():
    client = make_app().test_client()  # no services wired: a 422 must come first
    for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest",
                "http://localhost/x", "/relative"):
        response = await client.post("/threads/t1/runs", json={
            "assistant_id": "agent", "input": {}, "webhook": url})
        assert response.status_code == 422, url
        body = await response.get_json()
        assert body["field"] == "webhook" and "webhook" in body["detail"]


def test_run_json_masks_webhook_credentials():
    row = {"run_id": "r", "thread_id": "t", "assistant_id": "a", "created_at": None,
           "updated_at": None, "status": "pending", "metadata": {},
           "multitask_strategy": "reject",
           "execution_params": {"webhook": "https://user:s3cret@hooks.example.com/x",
                                "input": {}}}
    out = run_json(row)
    assert out["kwargs"]["webhook"] == "https://****@hooks.example.com/x"
    assert "s3cret" not in repr(out)
    assert row["execution_params"]["webhook"].startswith("https://user:s3cret@")  # stored as is
