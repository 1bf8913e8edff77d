"""`aegra dev` helpers: the reload watcher and pgserver's handle list."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from aegra import devserver, localdb


def test_snapshot_watches_sources_and_skips_tool_folders(tmp_path):
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "agent.py").write_text("x = 1\n")
    (tmp_path / "aegra.json").write_text("{}")
    (tmp_path / "notes.md").write_text("not watched")
    for skipped in (".aegra/pgdata", ".venv/lib", "node_modules/x", "graphs/__pycache__", ".git"):
        (tmp_path / skipped).mkdir(parents=True)
        (tmp_path / skipped / "mod.py").write_text("")
    env_file = tmp_path / "elsewhere.env"
    before = devserver.snapshot(tmp_path, [env_file])
    assert sorted(os.path.relpath(p, tmp_path) for p in before) == ["aegra.json", "graphs/agent.py"]

    env_file.write_text("A=1\n")  # a new env file counts as a change
    after = devserver.snapshot(tmp_path, [env_file])
    assert devserver.changed(before, after) == str(env_file)
    agent = tmp_path / "graphs" / "agent.py"
    stat = agent.stat()
    os.utime(agent, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert devserver.changed(after, devserver.snapshot(tmp_path, [env_file])) == str(agent)
    assert devserver.changed(after, after) is None


def test_forget_dead_handles_keeps_live_processes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    handles = tmp_path / ".handle_pids.json"
    handles.write_text(json.dumps([dead.pid, os.getpid()]))
    localdb.forget_dead_handles(tmp_path)
    assert json.loads(handles.read_text()) == [os.getpid()]
    localdb.forget_dead_handles(tmp_path / "missing")  # no data folder yet: nothing to do
