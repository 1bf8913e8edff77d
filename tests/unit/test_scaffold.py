"""`aegra init`: the scaffolded project loads, and its sample graph answers without a key."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from aegra import project, scaffold
from aegra.config import ENV_NAMES

FILES = ["aegra.json", "graphs/__init__.py", "graphs/agent.py", ".env.example", ".gitignore",
         "Dockerfile", ".dockerignore", "compose.yaml"]


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_init_creates_a_project_that_loads_and_runs(tmp_path):
    lines = list(scaffold.create(tmp_path / "proj"))
    root = tmp_path / "proj"
    assert [f"created {f}" for f in FILES] == lines[:-1]
    assert lines[-1].startswith("next: ")
    for rel in FILES:
        assert (root / rel).is_file(), rel
    assert not (root / ".env").exists()  # secrets file is the user's to create

    assert json.loads((root / "aegra.json").read_text())["graphs"] == {
        "agent": "./graphs/agent.py:graph"}
    loaded = project.load(root / "aegra.json")
    assert set(loaded.graphs) == {"agent"}
    assert loaded.graphs["agent"].target == str((root / "graphs/agent.py").resolve())
    assert loaded.dependencies == [root.resolve()]

    module = _import(root / "graphs" / "agent.py", "scaffold_agent_sample")
    out = module.graph.invoke({"messages": [("user", "hi")]})
    assert out["messages"][-1].type == "ai"
    assert out["messages"][-1].content == "echo #1: hi"
    again = module.graph.invoke({"messages": [*out["messages"], ("user", "more")],
                                 "turns": out["turns"]})
    assert again["messages"][-1].content == "echo #2: more"

    example = (root / ".env.example").read_text()
    for name in ENV_NAMES:
        assert f"# {name}=" in example, name
    assert "# WORKER_DRAIN_TIMEOUT=30\n" in example and "# REDIS_BROKER_ENABLED=false\n" in example


def test_init_twice_never_overwrites(tmp_path):
    list(scaffold.create(tmp_path))
    (tmp_path / "graphs" / "agent.py").write_text("# mine\n")
    lines = list(scaffold.create(tmp_path))
    assert [f"skipped {f} (exists)" for f in FILES] == lines[:-1]
    assert (tmp_path / "graphs" / "agent.py").read_text() == "# mine\n"


def test_aegra_init_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "aegra", "init", "demo"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "created aegra.json" in done.stdout and "cd demo && aegra dev" in done.stdout
    assert (tmp_path / "demo" / "graphs" / "agent.py").is_file()
