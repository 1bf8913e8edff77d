"""``aegra export`` / ``aegra import`` (operations spec §7): a logical backup round trip.

Server 1 on database A holds an interrupted thread, a completed multi-step thread, store
items and a user assistant. ``aegra export`` runs beside it; ``aegra import`` loads the
file into database B, on which server 2 has already booted (so its system assistants
exist). Server 2 must then serve the same threads, states, histories and store items, and
resume the interrupted thread to completion. Refusals are one line and non-zero.
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from langgraph_sdk import get_client

from tests.e2e.conftest import GRAPHS, base_env, write_project

GRAPHS_USED = {"hitl": f"{GRAPHS / 'hitl.py'}:graph", "agent": f"{GRAPHS / 'echo.py'}:graph"}


def aegra(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aegra", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


async def _fill(url: str) -> dict[str, str]:
    client = get_client(url=url)
    done = (await client.threads.create(metadata={"who": "done"}))["thread_id"]
    await client.runs.wait(done, "hitl", input={"topic": "a"})
    await client.runs.wait(done, "hitl", command={"resume": "ok"})
    paused = (await client.threads.create(metadata={"who": "paused"}))["thread_id"]
    out = await client.runs.wait(paused, "hitl", input={"topic": "b"})
    assert out["__interrupt__"][0]["value"] == {"question": "approve b?"}
    await client.store.put_item(["docs", "u1"], "k1", {"text": "one", "nested": {"a": [1]}})
    await client.store.put_item(["other"], "k2", {"text": "two"})
    mine = await client.assistants.create("hitl", name="mine", metadata={"team": "x"})
    return {"done": done, "paused": paused, "assistant": mine["assistant_id"]}


async def _snapshot(url: str, ids: dict[str, str]) -> dict[str, Any]:
    client = get_client(url=url)
    out: dict[str, Any] = {"store": (await client.store.search_items([]))["items"]}
    for name in ("done", "paused"):
        tid = ids[name]
        out[name] = {"thread": await client.threads.get(tid),
                     "state": await client.threads.get_state(tid),
                     "history": await client.threads.get_history(tid, limit=100)}
    out["assistant"] = await client.assistants.get(ids["assistant"])
    out["threads"] = sorted(t["thread_id"] for t in await client.threads.search())
    return out


async def _resume(url: str, tid: str) -> None:
    client = get_client(url=url)
    result = await client.runs.wait(tid, "hitl", command={"resume": "yes"})
    assert result["trail"] == ["draft", "ask", "finish:yes"]
    assert (await client.threads.get(tid))["status"] == "idle"


def test_export_import_round_trip(start_server, make_database, migrated_template, tmp_path):
    db_a, db_b = (make_database(template=migrated_template) for _ in range(2))
    write_project(tmp_path, GRAPHS_USED)
    env_a, env_b = base_env(db_a), base_env(db_b)
    # Both boot at once (their own databases); server 2 is ready before the import.
    server_1 = start_server(env_a, wait_ready=False)
    server_2 = start_server(env_b, wait_ready=False)
    server_1.wait_ready()
    ids = asyncio.run(_fill(server_1.url))
    before = asyncio.run(_snapshot(server_1.url, ids))
    assert before["paused"]["thread"]["status"] == "interrupted"
    assert before["paused"]["state"]["next"] == ["ask"] and len(before["done"]["history"]) > 3

    backup = tmp_path / "backup.jsonl.gz"
    exported = aegra(env_a, tmp_path, "export", "--out", str(backup))  # server 1 still up
    assert exported.returncode == 0, exported.stderr
    assert "export thread: 2 rows" in exported.stderr and "export store: 2 rows" in exported.stderr
    assert gzip.open(backup, "rt").readline().startswith('{"@": "aegra-backup", "version": 1')

    server_2.wait_ready()
    imported = aegra(env_b, tmp_path, "import", str(backup))
    assert imported.returncode == 0, imported.stderr
    assert "import thread: 2 rows" in imported.stderr
    after = asyncio.run(_snapshot(server_2.url, ids))
    for key in ("store", "done", "paused", "assistant", "threads"):
        assert after[key] == before[key], key
    asyncio.run(_resume(server_2.url, ids["paused"]))

    # Again into B: existing ids are refused in one line and nothing changes...
    again = aegra(env_b, tmp_path, "import", str(backup))
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "already exists" in again.stderr
    assert asyncio.run(_snapshot(server_2.url, ids))["paused"]["thread"]["status"] == "idle"
    # ... or skipped on request, keeping what is here (the resumed thread).
    skip = aegra(env_b, tmp_path, "import", "--skip-existing", str(backup))
    assert skip.returncode == 0 and "2 existing skipped" in skip.stderr, skip.stderr
    assert asyncio.run(_snapshot(server_2.url, ids))["paused"]["thread"]["status"] == "idle"
    # ... or replaced: the paused thread is paused again, its history the file's.
    over = aegra(env_b, tmp_path, "import", "--overwrite", str(backup))
    assert over.returncode == 0, over.stderr
    assert asyncio.run(_snapshot(server_2.url, ids))["paused"] == before["paused"]


def test_import_refuses_bad_files_and_migrates_an_empty_database(make_database,
                                                                  migrated_template, tmp_path):
    db = make_database(template=migrated_template)
    env = base_env(db)
    cases = {
        "foreign.json": '{"hello": 1}\n',
        "empty.jsonl": "",
        "future.jsonl": '{"@": "aegra-backup", "version": 99}\n',
        "truncated.jsonl": ('{"@": "aegra-backup", "version": 1}\n'
                            '{"@": "table", "name": "store", "columns": ["prefix", "key", '
                            '"value"]}\n{"prefix": "p", "key": "k", "value": {}}\n'),
    }
    said = {}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        result = aegra(env, tmp_path, "import", str(tmp_path / name))
        assert result.returncode == 1, (name, result.stderr)
        said[name] = result.stderr.strip()
        assert said[name].startswith("aegra: ") and "\n" not in said[name], said[name]
    assert said["foreign.json"].endswith("foreign.json is not an aegra backup file")
    assert "format version 99; this aegra reads version 1" in said["future.jsonl"]
    assert "truncated" in said["truncated.jsonl"]
    with psycopg.connect(db) as conn:  # the truncated file was rolled back whole
        assert conn.execute("SELECT count(*) FROM store").fetchone() == (0,)

    whole = tmp_path / "whole.jsonl"
    # Semantic index rows need the target's store_vectors table (made by a server
    # booted with store.index): without it they are skipped, saying so.
    vectors = ('{"@": "table", "name": "store_vectors", "columns": ["prefix", "key", '
               '"field_name", "embedding"]}\n'
               '{"prefix": "p", "key": "k", "field_name": "$", "embedding": "[1,0]"}\n')
    whole.write_text(cases["truncated.jsonl"] + vectors
                     + '{"@": "end", "counts": {"store": 1, "store_vectors": 1}}\n')
    fresh = base_env(make_database())  # empty, never booted: import migrates it first
    result = aegra(fresh, tmp_path, "import", str(whole))
    assert result.returncode == 0, result.stderr
    assert "import store: 1 rows" in result.stderr
    assert "import store_vectors: 1 rows SKIPPED" in result.stderr
    with psycopg.connect(fresh["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT prefix, key, value FROM store").fetchall() == [
            ("p", "k", {})]

