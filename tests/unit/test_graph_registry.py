"""GraphRegistry: loading (and its one-line errors), every factory kind, introspection.

Real LangGraph objects throughout: the in-memory saver/store stand in for the server's
PostgreSQL ones only as the things ``bind`` attaches, which is all the registry does with
them. Async tests open the asyncio bridge because async factories run on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel import Pregel
from langgraph.store.memory import InMemoryStore
from langgraph_sdk.runtime import _ExecutionRuntime, _ReadRuntime

from aegra import project as projmod
from aegra.adapters import aio
from aegra.adapters.langgraph.graphs import (
    GraphInvalid,
    GraphLoadError,
    GraphRegistry,
    default_assistant_id,
)
from aegra.domain.errors import NotFound

GRAPHS = Path(__file__).parent.parent / "e2e" / "graphs"
FACTORIES = GRAPHS / "factories.py"
KINDS = {
    "agent": f"{GRAPHS / 'echo.py'}:graph",
    "nested": f"{GRAPHS / 'nested.py'}:graph",
    "plain": f"{FACTORIES}:builder",
    "no_arg": f"{FACTORIES}:make_graph",
    "with_config": f"{FACTORIES}:make_graph_config",
    "asyncf": f"{FACTORIES}:make_graph_async",
    "cm": f"{FACTORIES}:make_graph_cm",
    "rt": f"{FACTORIES}:make_graph_runtime",
}


def _project(tmp_path: Path, graphs: dict[str, str], **extra: object) -> projmod.Project:
    path = tmp_path / "aegra.json"
    path.write_text(json.dumps({"graphs": graphs, **extra}))
    return projmod.load(path)


def _load_error(tmp_path: Path, source: str, attr: str = "graph") -> str:
    (tmp_path / "bad.py").write_text(source)
    proj = _project(tmp_path, {"bad": f"./bad.py:{attr}"})
    with pytest.raises(GraphLoadError) as info:
        GraphRegistry.load(proj)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"graphs.bad = '{tmp_path / 'bad.py'}:{attr}' "
                              f"({tmp_path / 'aegra.json'}): ")
    return message


def test_import_error_is_one_line_naming_file_and_error(tmp_path):
    message = _load_error(tmp_path, "import no_such_package_xyz\n")
    assert message.endswith("ModuleNotFoundError: No module named 'no_such_package_xyz'")


def test_error_raised_at_import_keeps_its_type_and_flattens_newlines(tmp_path):
    message = _load_error(tmp_path, "raise RuntimeError('first line\\nsecond line')\n")
    assert message.endswith("RuntimeError: first line second line")


def test_syntax_error_names_the_line(tmp_path):
    message = _load_error(tmp_path, "def broken(:\n")
    assert "SyntaxError: " in message and "line 1" in message


def test_missing_attribute_names_the_attribute(tmp_path):
    message = _load_error(tmp_path, "graph = None\n", attr="grahp")
    assert message.endswith(f"AttributeError: {tmp_path / 'bad.py'} has no attribute 'grahp'")


def test_object_that_is_not_a_graph(tmp_path):
    message = _load_error(tmp_path, "graph = 42\n")
    assert message.endswith(
        "TypeError: 'graph' is a int, not a compiled graph, a StateGraph or a graph factory")


def test_factory_with_too_many_parameters(tmp_path):
    message = _load_error(tmp_path, "def graph(a, b, c):\n    pass\n")
    assert "TypeError: graph factory graph(a, b, c) must take ()" in message


def test_module_path_graph_and_missing_module(tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "agent.py").write_text(FACTORIES.read_text())
    proj = _project(tmp_path, {"mod": "mypkg.agent:builder"}, dependencies=["."])
    registry = GraphRegistry.load(proj)
    assert registry.ids() == ["mod"] and "mod" in registry and "other" not in registry
    proj = _project(tmp_path, {"gone": "mypkg.missing:graph"}, dependencies=["."])
    with pytest.raises(GraphLoadError, match=r"^graphs\.gone = 'mypkg\.missing:graph' .*"
                       r"ModuleNotFoundError: No module named 'mypkg\.missing'$"):
        GraphRegistry.load(proj)


def test_graphs_of_one_file_share_one_module(tmp_path):
    registry = GraphRegistry.load(_project(tmp_path, KINDS))
    assert registry.ids() == list(KINDS)
    fns = [registry._entries[g].fn for g in ("no_arg", "with_config", "cm")]
    assert len({fn.__module__ for fn in fns}) == 1
    assert default_assistant_id("agent") == "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
    assert registry.default_name("agent") == "agent"


@pytest.fixture
def registry(tmp_path: Path) -> GraphRegistry:
    reg = GraphRegistry.load(_project(tmp_path, KINDS))
    reg.bind(InMemorySaver(), InMemoryStore())
    return reg


def _seen(registry: GraphRegistry) -> dict:
    return sys.modules[registry._entries["no_arg"].fn.__module__].SEEN


async def _nodes(registry: GraphRegistry, graph_id: str, config: dict | None = None,
                 **kw: object) -> set[str]:
    async with registry.open(graph_id, config, **kw) as graph:
        assert isinstance(graph, Pregel)
        assert graph.checkpointer is registry.checkpointer
        assert graph.store is registry._store
        return set(graph.nodes) - {"__start__"}


async def test_open_every_kind_attaches_checkpointer_and_store(registry):
    async with aio.open_loop():
        assert await _nodes(registry, "agent") == {"think", "reply"}
        assert await _nodes(registry, "plain") == {"plain"}  # StateGraph compiled at load
        assert await _nodes(registry, "no_arg") == {"no_arg"}  # factory of a StateGraph
        assert await _nodes(registry, "asyncf") == {"async_made"}
        async with registry.open("agent") as graph:
            assert graph.name == "agent"  # an unnamed graph takes its id, as on the platform


async def test_config_factory_gets_the_callers_config(registry):
    async with aio.open_loop():
        config = {"configurable": {"node_name": "custom"}, "tags": ["x"]}
        assert await _nodes(registry, "with_config", config) == {"custom"}
        seen = _seen(registry)["config"]
        assert seen["configurable"]["node_name"] == "custom" and seen["tags"] == ["x"]
        assert seen["recursion_limit"] == 25  # a full RunnableConfig
        assert config == {"configurable": {"node_name": "custom"}, "tags": ["x"]}  # untouched
        assert await _nodes(registry, "asyncf", {"configurable": {"a": 1}}) == {"async_made"}
        assert _seen(registry)["async"]["configurable"] == {"a": 1}


async def test_async_context_manager_factory_is_exited_after_use(registry):
    seen = _seen(registry)
    before_in, before_out = seen.get("cm_entered", 0), seen.get("cm_exited", 0)
    async with aio.open_loop():
        async with registry.open("cm") as graph:
            assert set(graph.nodes) == {"__start__", "from_cm"}
            assert seen["cm_entered"] == before_in + 1
            assert seen.get("cm_exited", 0) == before_out
        assert seen["cm_exited"] == before_out + 1
        with pytest.raises(KeyError, match="raised in the body"):  # bare, not a group
            async with registry.open("cm"):
                raise KeyError("raised in the body")
        assert seen["cm_exited"] == before_out + 2


async def test_runtime_factory_gets_a_server_runtime(registry):
    async with aio.open_loop():
        await _nodes(registry, "rt")
        runtime = _seen(registry)["runtime"]
        assert isinstance(runtime, _ReadRuntime)
        assert runtime.access_context == "assistants.read"
        assert runtime.store is registry._store and runtime.execution_runtime is None
        await _nodes(registry, "rt", access="threads.create_run", context={"k": 1})
        runtime = _seen(registry)["runtime"]
        assert isinstance(runtime, _ExecutionRuntime) and runtime.context == {"k": 1}


async def test_unknown_graph_is_not_found(registry):
    with pytest.raises(NotFound, match="Graph 'nope' not found"):
        registry.open("nope")
    with pytest.raises(NotFound):
        await registry.schemas("nope")


async def test_schemas_drawing_and_subgraphs(registry):
    async with aio.open_loop():
        nested = await registry.schemas("nested")
        assert nested["graph_id"] == "nested"
        assert nested["input_schema"]["title"] == "Input"
        assert nested["context_schema"]["title"] == "Context"
        assert nested["state_schema"]["title"] == "nested_state"
        plain = await registry.schemas("plain")
        assert plain["context_schema"] is None and plain["config_schema"] == {}
        assert await registry.subgraphs("plain", None, None, False) == {}
        assert set(await registry.subgraphs("nested", None, None, True)) == {"child"}
        assert await registry.subgraphs("nested", None, "absent", False) == {}
        flat = await registry.drawing("nested", None, False)
        deep = await registry.drawing("nested", None, True)
        assert {n["id"] for n in flat["nodes"]} == {"__start__", "prepare", "child", "__end__"}
        assert "child:inner_work" in {n["id"] for n in deep["nodes"]}
        assert await registry.drawing("nested", None, 1) == deep
        drawn = await registry.drawing("with_config", {"configurable": {"node_name": "n2"}},
                                       False)
        assert "n2" in {n["id"] for n in drawn["nodes"]}


async def test_factory_failures_surface_bare(tmp_path):
    (tmp_path / "f.py").write_text(
        "from contextlib import asynccontextmanager\n"
        "@asynccontextmanager\n"
        "async def failing(config):\n"
        "    raise ValueError('no model configured')\n"
        "    yield\n"
        "def not_a_graph():\n"
        "    return {'nodes': []}\n")
    reg = GraphRegistry.load(_project(tmp_path, {"failing": "./f.py:failing",
                                                 "odd": "./f.py:not_a_graph"}))
    reg.bind(InMemorySaver(), InMemoryStore())
    async with aio.open_loop():
        with pytest.raises(ValueError, match="no model configured"):
            async with reg.open("failing"):
                pass
        with pytest.raises(GraphInvalid) as info:
            async with reg.open("odd"):
                pass
        assert info.value.status == 424 and "Graph 'odd' is not valid" in info.value.message
