"""aegra.json (langgraph.json format) parsing and its one-line errors."""

from __future__ import annotations

import json

import pytest

from aegra import project
from aegra.config import ConfigError


def write(tmp_path, doc):
    path = tmp_path / "aegra.json"
    path.write_text(json.dumps(doc))
    return path


def test_graph_paths_env_and_dependencies(tmp_path):
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "agent.py").write_text("graph = None\n")
    (tmp_path / "env.local").write_text("export A=1\nB='two words'\n# c\nC=3 # comment\n")
    proj = project.load(write(tmp_path, {
        "graphs": {"agent": "./graphs/agent.py:graph", "pkg": "my.module:make",
                   "described": {"path": "./graphs/agent.py:graph", "description": "d"}},
        "dependencies": ["."], "env": "env.local", "python_version": "3.11",
    }))
    agent = proj.graphs["agent"]
    assert agent.is_file and agent.target == str(tmp_path / "graphs" / "agent.py")
    assert agent.attr == "graph"
    assert not proj.graphs["pkg"].is_file and proj.graphs["pkg"].target == "my.module"
    assert proj.graphs["described"].description == "d"
    assert proj.env == {"A": "1", "B": "two words", "C": "3"}
    assert proj.dependencies == [tmp_path.resolve()]


def test_missing_graph_file_is_one_line_naming_key_value_and_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        project.load(write(tmp_path, {"graphs": {"agent": "./nope.py:graph"}}))
    message = str(info.value)
    assert message.startswith("config error: graphs.agent = './nope.py:graph' (aegra.json)")
    assert "not found" in message and "\n" not in message


def test_malformed_graph_spec(tmp_path):
    with pytest.raises(ConfigError, match=r"graphs.agent = 'nocolon' \(aegra.json\)"):
        project.load(write(tmp_path, {"graphs": {"agent": "nocolon"}}))


def test_find_prefers_aegra_json_then_langgraph_json(tmp_path):
    assert project.find(None, tmp_path) is None
    (tmp_path / "langgraph.json").write_text("{}")
    assert project.find(None, tmp_path) == tmp_path / "langgraph.json"
    (tmp_path / "aegra.json").write_text("{}")
    assert project.find(None, tmp_path) == tmp_path / "aegra.json"
    with pytest.raises(ConfigError, match="not found"):
        project.find("missing.json", tmp_path)
