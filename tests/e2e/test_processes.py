"""``aegra serve --processes 2``: a parent and two full servers behind one port (Redis,
and without it the PostgreSQL channel).

One parent serves the whole multi-process test: readiness over NOTIFY_SOCKET, both
children answering, a run created through one child streaming to a client of the other
and executing once, a cancel crossing processes, a cron firing once per occurrence,
SIGKILL of the executing child (its run recovers, the parent restarts it, the port keeps
answering), SIGTERM draining to exit 0.
"""

from __future__ import annotations

import collections
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.e2e.conftest import base_env
from tests.e2e.test_distributed import setup, steps_done, wait_for

TOKEN = "processes-admin-token"


def _pid_of(client: httpx.Client) -> int:
    stats = client.get("/admin/stats", headers={"Authorization": f"Bearer {TOKEN}"})
    assert stats.status_code == 200, stats.text
    return int(stats.json()["instance"]["id"].split(":")[1])


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def clients_per_child(url: str, want: int, timeout: float = 15.0) -> dict[int, httpx.Client]:
    """One single-connection client per child process, found by opening connections until
    each child has accepted one (the children share the listening socket)."""
    found: dict[int, httpx.Client] = {}
    deadline = time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        client = httpx.Client(base_url=url, timeout=10,
                              limits=httpx.Limits(max_connections=1))
        pid = _pid_of(client)
        if pid in found:
            client.close()
        else:
            found[pid] = client
    assert len(found) == want, f"only {sorted(found)} answered"
    return found


def _run(client: httpx.Client, delay: float) -> tuple[str, str]:
    tid = client.post("/threads", json={}).json()["thread_id"]
    created = client.post(f"/threads/{tid}/runs",
                          json={"assistant_id": "steps", "input": {"delay": delay}})
    assert created.status_code == 200, created.text
    return tid, created.json()["run_id"]


def _status(database_url: str, rid: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (rid,)).fetchone()
    assert row is not None
    return str(row[0])


def _occurrences(database_url: str, cron_id: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT execution_params->'cron'->>'scheduled_at' FROM runs"
                            " WHERE cron_id = %s", (cron_id,)).fetchall()
    return [r[0] for r in rows if r[0] is not None]  # None: the run made at creation


def _await_ready(notify: socket.socket, timeout: float) -> None:
    notify.settimeout(timeout)
    while notify.recv(4096) != b"READY=1":
        pass


def test_two_processes_share_the_port_and_coordinate(start_server, database_url,
                                                     private_redis, tmp_path):
    _coordinate(start_server, database_url, private_redis.url, tmp_path)


def test_two_processes_coordinate_without_redis_through_postgres(start_server, database_url,
                                                                 tmp_path):
    """Without Redis the parent gives its children the PostgreSQL channel: the same
    scenario, with queue, cancels, run streams and cron all going through the database."""
    _coordinate(start_server, database_url, None, tmp_path)


def _coordinate(start_server, database_url, redis_url, tmp_path):
    name = f"aegra-test-{uuid.uuid4().hex[:8]}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind("\0" + name)
    env, log = setup(tmp_path, database_url, redis_url or "unused", AEGRA_ADMIN_TOKEN=TOKEN,
                     NOTIFY_SOCKET="@" + name, CRON_ALLOW_SECONDS_SCHEDULE="true",
                     AEGRA__CRON__TICK_INTERVAL_S="0.2")
    if redis_url is None:
        del env["REDIS_BROKER_ENABLED"], env["REDIS_URL"]
    server = start_server(env, args=["--processes", "2"], wait_ready=False)
    with notify:
        _await_ready(notify, 60)
    parent = server.proc.pid
    # READY=1 came only after both children were ready: each answers straight away.
    children = clients_per_child(server.url, 2, timeout=10)
    assert all(_ppid(pid) == parent for pid in children)
    (pid_a, a), (pid_b, b) = children.items()
    cron = a.post("/runs/crons", json={"assistant_id": "agent", "schedule": "* * * * * *",
                                       "input": {"messages": []},
                                       "on_run_completed": "keep"})
    assert cron.status_code == 200, cron.text
    cron_id = cron.json()["cron_id"]

    # Created through A, streamed whole to the client of the child not executing it,
    # executed exactly once.
    tid, rid = _run(a, 0.2)
    runner = _executor_pid(database_url, rid)
    other = children[pid_b if runner == pid_a else pid_a]
    with other.stream("GET", f"/threads/{tid}/runs/{rid}/stream") as stream:
        body = "".join(stream.iter_text())
    values = [json.loads(line[5:]) for line in body.splitlines()
              if line.startswith("data:") and '"done"' in line]
    assert [v["done"] for v in values] == [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3],
                                           [0, 1, 2, 3, 4]], body[-500:]
    assert collections.Counter(steps_done(log, tid)) == dict.fromkeys(range(5), 1)

    # A cancel sent to the process that is not executing the run reaches the one that is.
    tid, rid = _run(a, 1.0)
    runner = _executor_pid(database_url, rid)
    other = children[pid_b if runner == pid_a else pid_a]
    assert other.post(f"/threads/{tid}/runs/{rid}/cancel").status_code in (200, 202, 204)
    wait_for(lambda: _status(database_url, rid) == "interrupted", 5, "the cancel")
    assert len(steps_done(log, tid)) < 5
    # Heard over the channel (Redis or NOTIFY), not picked up by the 1 s heartbeat.
    heard = [e["run_id"] for e in _log_events(server.logs())
             if e.get("event") == "run.cancel_received"]
    assert heard == [rid], heard

    # Both children tick the cron every 0.2 s: each occurrence fired once.
    wait_for(lambda: len(_occurrences(database_url, cron_id)) >= 3, 10, "3 cron firings")
    assert b.delete(f"/runs/crons/{cron_id}").status_code in (200, 204)
    fired = _occurrences(database_url, cron_id)
    assert len(fired) == len(set(fired)), fired

    # SIGKILL of the executing child: the parent restarts it, the port keeps answering,
    # the run completes after its lease expires.
    tid, rid = _run(a, 0.5)
    victim = _executor_pid(database_url, rid)
    wait_for(lambda: len(steps_done(log, tid)) >= 1, 10, "a completed step")
    for client in children.values():
        client.close()
    subprocess.run(["kill", "-KILL", str(victim)], check=True)
    for _ in range(5):  # new connections go to the surviving child meanwhile
        assert httpx.get(server.url + "/ok", timeout=5).status_code == 200
    wait_for(lambda: _status(database_url, rid) == "success", 20, "the run's recovery")
    assert set(steps_done(log, tid)) == set(range(5))
    wait_for(lambda: _restarted(server.logs(), victim), 20, "the restarted child")

    server.signal(signal.SIGTERM)
    assert server.wait(30) == 0
    assert '"processes.stopped"' in server.logs()


def _executor_pid(database_url: str, rid: str) -> int:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT claimed_by FROM runs WHERE run_id = %s",
                               (rid,)).fetchone()
        if row and row[0]:
            return int(row[0].split(":")[1])
        time.sleep(0.05)
    raise AssertionError("run never claimed")


def _log_events(logs: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in logs.splitlines() if line.startswith("{")]


def _restarted(logs: str, victim: int) -> bool:
    """The slot of the killed child got a new process, which became ready."""
    lines = _log_events(logs)
    crashed = [e for e in lines if e.get("event") == "processes.child_crashed"
               and e.get("pid") == victim]
    if not crashed:
        return False
    started = [e["pid"] for e in lines if e.get("event") == "processes.child_started"
               and e.get("slot") == crashed[0]["slot"] and e["pid"] != victim]
    ready = {e["pid"] for e in lines if e.get("event") == "processes.child_ready"}
    return any(pid in ready for pid in started)


def _alive_child_of(pid: int, parent: int) -> bool:
    try:
        return _ppid(pid) == parent
    except (FileNotFoundError, ProcessLookupError):  # exited meanwhile
        return False


def test_children_drain_and_exit_when_the_parent_is_sigkilled(start_server, database_url,
                                                              tmp_path):
    """SIGKILL of the parent alone (nothing forwarded): its children, in sessions of their
    own, see the lifeline pipe close, drain (the run in flight is handed back, not kept
    running unsupervised) and exit; the port is released for a restarted parent."""
    env, log = setup(tmp_path, database_url, "unused")
    del env["REDIS_BROKER_ENABLED"], env["REDIS_URL"]
    server = start_server(env, args=["--processes", "2"], wait_ready=False)
    wait_for(lambda: '"processes.ready"' in server.logs(), 60, "both children ready")
    parent = server.proc.pid
    children = [int(p.name) for p in Path("/proc").iterdir()
                if p.name.isdigit() and _alive_child_of(int(p.name), parent)]
    assert len(children) == 2
    tid, rid = _run(httpx.Client(base_url=server.url, timeout=10), 2.0)  # 10 s of steps
    assert _executor_pid(database_url, rid) in children
    server.proc.kill()
    server.proc.wait(5)

    def gone(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        return state == "Z"

    wait_for(lambda: all(gone(pid) for pid in children), 20, "the orphaned children to exit")
    assert server.logs().count('"supervisor.parent_gone"') == 2
    # Handed back (or finished inside the drain), never left running without an owner.
    assert _status(database_url, rid) in ("pending", "success")
    assert len(steps_done(log, tid)) < 5 or _status(database_url, rid) == "success"
    with socket.socket() as sock:  # nobody listens on the port any more
        assert sock.connect_ex(("127.0.0.1", server.port)) != 0


def test_processes_below_one_are_refused(tmp_path):
    (tmp_path / "aegra.json").write_text('{"graphs": {}}')
    env = base_env("postgresql://nobody@127.0.0.1:1/none")
    done = subprocess.run([sys.executable, "-m", "aegra", "serve", "--processes", "0"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert "--processes" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_crash_loop_stops_the_parent_with_exit_1(tmp_path):
    # A graph that cannot load: every child exits 1 at once, before any I/O.
    (tmp_path / "broken.py").write_text('raise RuntimeError("cannot import")\n')
    (tmp_path / "aegra.json").write_text('{"graphs": {"agent": "./broken.py:graph"}}')
    env = base_env("postgresql://nobody@127.0.0.1:1/none", REDIS_BROKER_ENABLED="true",
                   REDIS_URL="redis://127.0.0.1:1", LOG_FORMAT="json",
                   AEGRA__SUPERVISOR__MAX_RESTARTS="1",
                   AEGRA__SUPERVISOR__BACKOFF_INITIAL_S="0.05")
    done = subprocess.run([sys.executable, "-m", "aegra", "serve", "--port", "0",
                           "--processes", "2"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr[-3000:]
    events = [json.loads(line).get("event") for line in done.stderr.splitlines()
              if line.startswith("{")]
    assert events.count("processes.child_crashed") >= 2
    assert "processes.crash_loop" in events and "processes.ready" not in events
