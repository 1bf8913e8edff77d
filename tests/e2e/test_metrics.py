"""``/metrics`` of a real ``aegra serve`` as operations §2 states it: every family declared
from startup, run counters and histograms moving with real runs, the active/queue gauges
under a capacity of 1, and the shipped alert rules and dashboard naming only metrics that
exist (``promtool check rules`` too).

One server for the module, with capacity 1 (one worker loop of one run), so three runs
make one active and two waiting.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml  # PyYAML, a dependency of langchain-core
from langgraph_sdk import get_client
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.runs_support import module_server, show_logs_on_failure, until

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Operations §2.1: family -> (type, label names of its samples).
FAMILIES = {
    "aegra_http_requests": ("counter", {"method", "route", "status"}),
    "aegra_http_request_duration_seconds": ("histogram", {"method", "route"}),
    "aegra_active_runs": ("gauge", set()),
    "process_resident_memory_bytes": ("gauge", set()),
    "aegra_queue_depth": ("gauge", set()),
    "aegra_runs": ("counter", {"status"}),
    "aegra_run_duration_seconds": ("histogram", set()),
    "aegra_run_queue_wait_seconds": ("histogram", set()),
    "aegra_lease_recoveries": ("counter", set()),
    "aegra_run_retries": ("counter", set()),
    "aegra_cron_lateness_seconds": ("histogram", set()),
    "aegra_webhook_deliveries": ("counter", {"outcome"}),
    "aegra_worker_capacity": ("gauge", set()),
    "aegra_ttl_swept": ("counter", {"kind"}),
}


@pytest.fixture(scope="module")
def server(pg_admin_dsn, tmp_path_factory):
    yield from module_server(pg_admin_dsn, tmp_path_factory, WORKER_COUNT="1",
                             N_JOBS_PER_WORKER="1", N_JOBS_PER_WORKER_MAX="1",
                             project={"webhooks": {"url": {"allowed_domains": ["127.0.0.1"]}}})


@pytest.fixture(autouse=True)
def _logs(request, server):
    yield from show_logs_on_failure(request, server)


def scrape(server) -> tuple[str, dict[str, str], Samples]:
    """(text, family -> type, (sample name, labels) -> value)."""
    text = httpx.get(server.url + "/metrics").text
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return text, types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_every_family_is_declared_from_startup(server):
    text, types, samples = scrape(server)  # the first request this server sees
    for family, (kind, _) in FAMILIES.items():
        assert types.get(family) == kind, (family, types.get(family))
    for status in ("success", "error", "timeout", "interrupted", "cancelled"):
        assert value(samples, "aegra_runs_total", status=status) == 0
    for outcome in ("success", "failure"):
        assert value(samples, "aegra_webhook_deliveries_total", outcome=outcome) == 0
    assert value(samples, "aegra_lease_recoveries_total") == 0
    assert value(samples, "aegra_worker_capacity") == 1
    assert value(samples, "process_resident_memory_bytes") > 10_000_000
    # Labels are the declared ones, and never carry a raw id (routes are templates).
    httpx.get(server.url + "/threads/00000000-0000-4000-8000-000000000000")
    text, _, samples = scrape(server)
    for (name, labels) in samples:
        family = next((f for f in FAMILIES if name.startswith(f)), None)
        if family is not None and not name.endswith("_created"):
            assert {k for k, _ in labels} - {"le"} == FAMILIES[family][1], (name, labels)
    assert "00000000-0000" not in text
    assert 'route="/threads/<thread_id>",status="404"' in text


def test_run_counters_and_histograms_move(server):
    _, _, before = scrape(server)

    async def scenario() -> None:
        client = get_client(url=server.url)
        for _ in range(2):
            thread = await client.threads.create()
            await client.runs.wait(thread["thread_id"], "slow", input={"delay": 0.1})
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "fail", input={"text": "x"},
                               raise_error=False)

    asyncio.run(scenario())

    def grown(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    async def settled() -> bool:
        nonlocal after
        _, _, after = scrape(server)
        return (grown("aegra_run_duration_seconds_count") >= 3
                and value(after, "aegra_active_runs") == 0)

    after = before
    asyncio.run(until(settled))
    assert grown("aegra_runs_total", status="success") == 2
    assert grown("aegra_runs_total", status="error") == 1
    assert grown("aegra_run_duration_seconds_count") == 3
    assert grown("aegra_run_queue_wait_seconds_count") == 3
    # Two runs of three 0.1 s nodes, and a failing one: about 0.6 s of execution.
    assert 0.5 < grown("aegra_run_duration_seconds_sum") < 5
    assert grown("aegra_run_queue_wait_seconds_sum") < 5
    assert value(after, "aegra_queue_depth") == 0


def test_active_and_queue_gauges_under_capacity_one(server):
    async def scenario() -> None:
        client = get_client(url=server.url)
        runs = []
        for i in range(3):
            thread = await client.threads.create()
            run = await client.runs.create(thread["thread_id"], "slow",
                                           input={"delay": 0.7, "tag": str(i)})
            runs.append((thread["thread_id"], run["run_id"]))

        async def one_running() -> str | None:
            text, _, s = scrape(server)
            busy = value(s, "aegra_active_runs") == 1 and value(s, "aegra_queue_depth") == 2
            return text if busy else None

        text = await until(one_running, within=5)  # while the first run executes (2.1 s)
        assert "\naegra_active_runs 1.0\n" in text and "\naegra_queue_depth 2.0\n" in text
        for tid, rid in runs:
            await client.runs.join(tid, rid)

        async def idle() -> bool:
            _, _, s = scrape(server)
            return value(s, "aegra_active_runs") == 0 and value(s, "aegra_queue_depth") == 0

        await until(idle)

    asyncio.run(scenario())


class _Receiver(BaseHTTPRequestHandler):
    """Accepts ``/ok`` (200), refuses anything else (400: final, no retry)."""

    def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200 if self.path == "/ok" else 400)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_deliveries_count_final_outcomes(server):
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{receiver.server_address[1]}"
    _, _, before = scrape(server)

    async def scenario() -> None:
        client = get_client(url=server.url)
        for path in ("/ok", "/ok", "/refused"):
            await client.runs.wait(None, "slow", input={"delay": 0.01}, webhook=base + path)

        async def delivered() -> bool:
            _, _, s = scrape(server)
            return all(
                value(s, "aegra_webhook_deliveries_total", outcome=o)
                - value(before, "aegra_webhook_deliveries_total", outcome=o) == n
                for o, n in (("success", 2), ("failure", 1)))

        await until(delivered)

    try:
        asyncio.run(scenario())
    finally:
        receiver.shutdown()
        receiver.server_close()


def deployed_names() -> set[str]:
    """Every ``aegra_*``/``process_*`` series named by the alert rules or the dashboard."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    doc = json.loads((DEPLOY / "grafana" / "aegra.json").read_text())
    dashboard = doc.get("dashboard", doc)
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return {n for e in exprs for n in re.findall(r"\b(?:aegra|process)_[a-z_]+\b", e)}


def test_alerts_and_dashboard_name_only_existing_metrics(server):
    _, _, samples = scrape(server)
    exposed = {name for name, _ in samples}
    names = deployed_names()
    assert {"aegra_http_requests_total", "aegra_http_request_duration_seconds_bucket",
            "aegra_active_runs", "process_resident_memory_bytes", "aegra_queue_depth",
            "aegra_lease_recoveries_total", "aegra_cron_lateness_seconds_bucket",
            "aegra_worker_capacity"} <= names
    assert names - exposed == set()
    dashboard = json.loads((DEPLOY / "grafana" / "aegra.json").read_text())
    charted = {t["expr"] for p in dashboard["panels"] for t in p["targets"]}
    runbook = {  # operations §2.3, verbatim
        'sum(rate(aegra_http_requests_total{status=~"5.."}[5m])) / '
        "sum(rate(aegra_http_requests_total[5m])) * 100",
        "histogram_quantile(0.95, sum(rate(aegra_http_request_duration_seconds_bucket[5m]))"
        " by (le))",
        "aegra_active_runs",
        'process_resident_memory_bytes{job="aegra-backend"} / 1024 / 1024 / 1024',
    }
    assert runbook <= charted


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (Debian: apt-get install prometheus)")
def test_alert_rules_pass_promtool(tmp_path):
    rules = DEPLOY / "prometheus" / "alerts.yml"
    check = subprocess.run(["promtool", "check", "rules", str(rules)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    # The rules evaluate, and the runbook alerts fire on the series that should fire them.
    unit = tmp_path / "alerts_test.yml"
    unit.write_text(json.dumps({
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": 'aegra_http_requests_total{method="GET",route="/x",status="200"}',
                 "values": "0+60x30"},
                {"series": 'aegra_http_requests_total{method="GET",route="/x",status="503"}',
                 "values": "0+30x30"},
                {"series": 'aegra_http_request_duration_seconds_bucket{le="2.5"}',
                 "values": "0+10x30"},
                {"series": 'aegra_http_request_duration_seconds_bucket{le="+Inf"}',
                 "values": "0+100x30"},
                {"series": "aegra_lease_recoveries_total", "values": "0 0 1 1 1"},
                {"series": "aegra_queue_depth", "values": "0+1x40"},
                {"series": 'aegra_cron_lateness_seconds_bucket{le="120"}',
                 "values": "0+1x40"},
                {"series": 'aegra_cron_lateness_seconds_bucket{le="+Inf"}',
                 "values": "0+10x40"},
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "AegraHighErrorRate",
                 "exp_alerts": [{"exp_labels": {"severity": "critical"}, "exp_annotations": {
                     "summary": "aegra answers more than 5% of requests with a 5xx",
                     "description": "33.3% of requests failed over 5 minutes."}}]},
                {"eval_time": "20m", "alertname": "AegraHighLatencyP95",
                 "exp_alerts": [{"exp_labels": {"severity": "warning"}, "exp_annotations": {
                     "summary": "aegra P95 request latency above 2 s",
                     "description": "P95 latency is 2.50 s over 5 minutes."}}]},
                {"eval_time": "4m", "alertname": "AegraLeaseRecoveries",
                 "exp_alerts": [{"exp_labels": {"severity": "warning"}, "exp_annotations": {
                     "summary": "aegra recovered runs from expired leases",
                     "description": "1 runs recovered in 15 minutes (crashed or stalled "
                                    "workers)."}}]},
                {"eval_time": "20m", "alertname": "AegraQueueGrowing", "exp_alerts": []},
                {"eval_time": "30m", "alertname": "AegraQueueGrowing",
                 "exp_alerts": [{"exp_labels": {"severity": "warning"}, "exp_annotations": {
                     "summary": "aegra run queue is growing",
                     "description": "30 runs pending and rising; add workers or capacity."}}]},
                {"eval_time": "30m", "alertname": "AegraCronLate",
                 "exp_alerts": [{"exp_labels": {"severity": "warning"}, "exp_annotations": {
                     "summary": "aegra crons fire late",
                     "description": "P95 cron lateness is 120 s."}}]},
            ],
        }],
    }))
    result = subprocess.run(["promtool", "test", "rules", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
