"""What a new user meets first reads plainly (issue 14, first-run friction): SDK errors
carry the status's reason phrase, a failed run's log line says why, and a busy port is
one line naming host and port, exiting promptly. ``aegra dev``'s own refusals (no project,
busy port) are checked without starting any database."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from tests.conftest import free_port
from tests.e2e.conftest import GRAPHS, ServerProcess, base_env, write_project
from tests.e2e.runs_support import module_server, show_logs_on_failure, until

PROMPT_S = 30.0  # a refusal must come well before this, even on a loaded machine
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "agent" / "graphs" / "agent.py"


@pytest.fixture(scope="module")
def server(pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ServerProcess]:
    graphs = {"fail": f"{GRAPHS / 'fail.py'}:graph", "agent": f"{EXAMPLE}:graph"}
    yield from module_server(pg_admin_dsn, tmp_path_factory, project={"graphs": graphs})


@pytest.fixture(autouse=True)
def _logs(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[None]:
    yield from show_logs_on_failure(request, server)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port held by a listening socket, bound as a server binds (SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_sdk_errors_carry_the_reason_phrase(server: ServerProcess) -> None:
    async def scenario() -> None:
        client = get_client(url=server.url)
        with pytest.raises(NotFoundError) as typed:  # the body's detail is its message
            await client.threads.get(str(uuid.uuid4()))
        assert typed.value.response.reason_phrase == "Not Found"
        # runs.wait/join/cancel raise httpx's own error, quoting the status line.
        with pytest.raises(httpx.HTTPStatusError) as plain:
            await client.runs.join(str(uuid.uuid4()), str(uuid.uuid4()))
        assert "'404 Not Found'" in str(plain.value)

    asyncio.run(scenario())
    assert httpx.get(server.url + "/ok").reason_phrase == "OK"
    with pytest.raises(httpx.HTTPStatusError, match="404 Not Found"):
        httpx.get(server.url + "/no/such/route").raise_for_status()


def test_readme_sdk_snippet_runs_as_a_script(server: ServerProcess, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    snippet = readme.split("Then talk to it with the SDK", 1)[1].split("```python\n", 1)[1]
    snippet = snippet.split("```", 1)[0]
    assert 'url="http://127.0.0.1:2026"' in snippet
    script = tmp_path / "hello.py"
    script.write_text(snippet.replace("http://127.0.0.1:2026", server.url))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=PROMPT_S)
    assert (done.returncode, done.stdout) == (0, "echo #1: hi\n"), done.stderr


def test_a_failed_run_is_logged_with_its_error(server: ServerProcess) -> None:
    async def scenario() -> str:
        client = get_client(url=server.url)
        thread = await client.threads.create()
        run = await client.runs.create(thread["thread_id"], "fail", input={"text": "x"})
        await client.runs.join(thread["thread_id"], run["run_id"])
        return str(run["run_id"])

    run_id = asyncio.run(scenario())

    async def finished() -> dict[str, object] | None:
        for line in server.logs().splitlines():
            if line.startswith("{") and '"run.finished"' in line and run_id in line:
                return dict(json.loads(line))
        return None

    line = asyncio.run(until(finished))
    assert line["status"] == "error" and line["level"] == "warning"
    assert line["error"] == "ValueError" and line["message"] == "boom: ok"
    assert "exception" not in line  # the traceback only at debug level


def test_serve_on_a_busy_port_says_so_in_one_line(
        server: ServerProcess, busy_port: int, tmp_path: Path) -> None:
    write_project(tmp_path)
    env = base_env(server.env["DATABASE_URL"])
    done = subprocess.run(
        [sys.executable, "-m", "aegra", "serve", "--host", "127.0.0.1",
         "--port", str(busy_port)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=PROMPT_S)
    assert done.returncode == 3, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"aegra: port {busy_port} on 127.0.0.1 is in use: "), done.stderr


def _dev(cwd: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = base_env("")
    del env["DATABASE_URL"]
    return subprocess.run(
        [sys.executable, "-m", "aegra", "dev", "--port", str(port), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=PROMPT_S)


def test_dev_refuses_a_folder_without_a_project(tmp_path: Path) -> None:
    done = _dev(tmp_path, free_port())
    assert done.returncode == 2
    assert done.stderr == (f"aegra: no aegra.json or langgraph.json found in {tmp_path}:"
                           " create a project with `aegra init`, or pass --config PATH\n")
    assert list(tmp_path.iterdir()) == []  # no database, nothing at all


def test_dev_on_a_busy_port_refuses_before_starting_anything(
        busy_port: int, tmp_path: Path) -> None:
    write_project(tmp_path)
    done = _dev(tmp_path, busy_port)
    assert done.returncode == 2
    assert done.stderr.startswith(f"aegra: port {busy_port} on 127.0.0.1 is in use: ")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / ".aegra").exists()
