"""A real Prometheus scraping a real ``aegra serve`` (operations §2.3-§2.4, issue 14).

Prometheus (the Debian ``prometheus`` binary) scrapes ``/metrics`` every second as job
``aegra-backend`` and loads ``deploy/prometheus/alerts.yml``. The test then evaluates every
PromQL query printed in ``docs/runbook.md`` through Prometheus' HTTP API, read from the
document itself so the runbook and the test cannot drift, and checks that each shipped
alert rule was evaluated without error.

Counters only have a rate once Prometheus has seen them move between two scrapes, and a
series first seen mid-way has no rate yet; so the traffic comes in two rounds, the second
after Prometheus has ingested the first.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # PyYAML, a dependency of langchain-core
from langgraph_sdk import get_client

from tests.conftest import free_port
from tests.e2e.conftest import GRAPHS, ServerProcess, base_env, write_project

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "runbook.md"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
TOKEN = "prometheus-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PROMETHEUS = shutil.which("prometheus")

# Operations §2.3, verbatim: the runbook must print these four.
CONTRACT = {
    "error_rate": 'sum(rate(aegra_http_requests_total{status=~"5.."}[5m])) / '
                  "sum(rate(aegra_http_requests_total[5m])) * 100",
    "p95": "histogram_quantile(0.95, sum(rate(aegra_http_request_duration_seconds_bucket"
           "[5m])) by (le))",
    "active_runs": "aegra_active_runs",
    "memory": 'process_resident_memory_bytes{job="aegra-backend"} / 1024 / 1024 / 1024',
}

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus binary not installed (Debian package prometheus)")


def runbook_queries() -> list[str]:
    """Every query in the runbook's ```promql blocks (comment lines are their titles)."""
    blocks = re.findall(r"```promql\n(.*?)```", RUNBOOK.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_runbook_prints_the_contract_queries() -> None:
    queries = runbook_queries()
    assert set(CONTRACT.values()) <= set(queries), queries


class Prometheus:
    """One ``prometheus`` process with its TSDB in ``workdir``; stopped by ``stop``."""

    def __init__(self, workdir: Path, target_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "aegra-backend",
                                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
        }))
        self.log_path = workdir / "prometheus.log"
        assert PROMETHEUS is not None
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}",
                 f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)

    def get(self, path: str, **params: str) -> Any:
        answer = httpx.get(self.url + path, params=params, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=promql)
        assert data["resultType"] == "vector", data
        return data["result"]  # type: ignore[no-any-return]

    def logs(self) -> str:
        return self.log_path.read_text()[-5000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def poll(what: str, check: Callable[[], Any], within: float, prom: Prometheus) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        if prom.proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{prom.logs()}")
        try:
            last = check()
        except (httpx.HTTPError, ValueError) as exc:  # not listening yet
            last = exc
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {within}s (last: {last!r})\n{prom.logs()}")


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, Prometheus]]:
    write_project(tmp_path, {"agent": f"{GRAPHS / 'echo.py'}:graph",
                             "slow": f"{GRAPHS / 'slow.py'}:graph"})
    server = ServerProcess(tmp_path, base_env(database_url, AEGRA_ADMIN_TOKEN=TOKEN,
                                              ENABLE_PROMETHEUS_METRICS="true"))
    server.start(wait_ready=False)
    prom: Prometheus | None = None
    try:
        prom = Prometheus(tmp_path, server.port)
        server.wait_ready()
        yield server, prom
    except BaseException:
        print(f"--- server log ---\n{server.logs()}")
        raise
    finally:
        if prom is not None:
            prom.stop()
        server.stop()


async def traffic(url: str) -> None:
    """Runs through the SDK, a 404, and one 503 from maintenance mode (a real 5xx)."""
    client = get_client(url=url)
    thread = await client.threads.create()
    for _ in range(2):
        await client.runs.wait(thread["thread_id"], "agent", input={"messages": []})
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        assert (await http.get("/threads/00000000-0000-0000-0000-000000000000")
                ).status_code == 404
        on = await http.post("/admin/maintenance", json={"enabled": True}, headers=ADMIN)
        assert on.status_code == 200, on.text
        try:
            refused = await http.post("/runs/wait", json={"assistant_id": "agent",
                                                          "input": {"messages": []}})
            assert refused.status_code == 503, refused.text
        finally:
            await http.post("/admin/maintenance", json={"enabled": False}, headers=ADMIN)


def requests_seen(server: ServerProcess) -> float:
    """Total of ``aegra_http_requests_total`` as the server itself reports it."""
    text = httpx.get(server.url + "/metrics", timeout=5).text
    return sum(float(m) for m in re.findall(r"^aegra_http_requests_total\{.*\} (\S+)$",
                                             text, flags=re.M))


def test_real_prometheus_evaluates_runbook_queries_and_alert_rules(stack) -> None:
    server, prom = stack
    poll("target up", lambda: [r for r in prom.query('up{job="aegra-backend"}')
                               if r["value"][1] == "1"], 20, prom)

    # Round one creates the series; round two moves them between scrapes.
    asyncio.run(traffic(server.url))
    total = requests_seen(server)
    poll("first round ingested", lambda: [r for r in prom.query(
        "sum(aegra_http_requests_total)") if float(r["value"][1]) >= total], 10, prom)
    asyncio.run(traffic(server.url))

    def value(promql: str) -> float | None:
        result = prom.query(promql)
        return float(result[0]["value"][1]) if result else None

    def plausible() -> dict[str, float] | None:
        values = {name: value(CONTRACT[name]) for name in CONTRACT}
        error_rate, p95 = values["error_rate"], values["p95"]
        ready = (error_rate is not None and 0 < error_rate < 100
                 and p95 is not None and 0 < p95 < 10)
        return values if ready else None  # type: ignore[return-value]

    values = poll("runbook queries plausible", plausible, 10, prom)
    assert values["active_runs"] == 0, values  # every run of both rounds has finished
    assert 0.01 < values["memory"] < 8, values  # GiB of one Python process

    # Every query the runbook prints returns data (the four above, and the extra ones).
    for promql in runbook_queries():
        assert prom.query(promql), f"no data for runbook query {promql!r}"

    async def one_active() -> None:
        client = get_client(url=server.url)
        thread = await client.threads.create()
        run = await client.runs.create(thread["thread_id"], "slow", input={"first": 30})
        try:
            poll("aegra_active_runs 1", lambda: value("aegra_active_runs") == 1, 10, prom)
        finally:
            await client.runs.cancel(thread["thread_id"], run["run_id"])
    asyncio.run(one_active())

    # The shipped alert rules are loaded and each has been evaluated without error.
    shipped = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"]
               for r in g["rules"]}

    def evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in prom.get("/api/v1/rules")["groups"] for r in g["rules"]]
        done = all(r["health"] != "unknown" and not r["lastEvaluation"].startswith("0001")
                   for r in rules)
        return rules if rules and done else None

    rules = poll("alert rules evaluated", evaluated, 10, prom)
    assert {r["name"] for r in rules} == shipped
    for rule in rules:
        assert rule["type"] == "alerting", rule
        assert rule["health"] == "ok" and not rule.get("lastError"), rule
