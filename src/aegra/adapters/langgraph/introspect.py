"""What Studio and the SDK read about a compiled graph: JSON Schemas, drawing, subgraphs.

Shapes follow LangGraph Platform (``langgraph_api.api.assistants``, checked against the
``langgraph dev`` oracle): a schema that cannot be produced is ``null`` and logged, never a
500, because one odd channel type must not hide the whole graph from Studio. All of this
is synchronous CPU work on the graph object; no I/O, so no bridge crossing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeAlias

from langchain_core.runnables.utils import create_model  # type: ignore[attr-defined]
from langgraph.pregel import Pregel
from pydantic import TypeAdapter

from aegra.domain.errors import Invalid
from aegra.logs import get_logger

log = get_logger("aegra.graphs")
Graph: TypeAlias = Pregel[Any, Any, Any, Any]

# Keys of ``configurable`` that are the server's business, not the user's settings.
_EXCLUDED_CONFIG_KEYS = (
    "__pregel_checkpointer", "__pregel_store", "checkpoint_id", "checkpoint_ns", "thread_id",
)
_NOT_DRAWABLE = "The graph does not support visualization"


def _configurable_schema(graph: Graph) -> dict[str, Any]:
    """Only the ``configurable`` part of the config schema, as the platform returns it."""
    with warnings.catch_warnings():
        # config_schema() is deprecated in LangGraph 1.0, but it is what the platform uses.
        warnings.simplefilter("ignore")
        config_schema = graph.config_schema()
    fields = getattr(config_schema, "model_fields", None)
    if not fields or "configurable" not in fields:
        return {}
    annotation: Any = fields["configurable"].annotation
    schema: dict[str, Any] = TypeAdapter(annotation).json_schema()
    if schema:
        for key in _EXCLUDED_CONFIG_KEYS:
            schema["properties"].pop(key, None)
    config_type = getattr(graph, "config_type", None)
    if config_type is not None and hasattr(config_type, "__name__"):
        schema["title"] = config_type.__name__
    return schema


def _state_schema(graph: Graph) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in graph.stream_channels_list:
        update_type = getattr(graph.channels[key], "UpdateType", Any)
        try:
            create_model(key, __root__=(update_type, None)).model_json_schema()
            fields[key] = (update_type, None)
        except Exception:  # noqa: BLE001  a channel type pydantic cannot describe becomes Any
            fields[key] = (Any, None)
    schema: dict[str, Any] = create_model(graph.get_name("State"), **fields).model_json_schema()
    return schema


def _attempt(what: str, graph: Graph, fn: Callable[[], dict[str, Any] | None]
             ) -> dict[str, Any] | None:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001  see module docstring: null, not a 500
        log.warning("graphs.schema_failed", schema=what, graph=graph.name, error=repr(exc))
        return None


def graph_schemas(graph: Graph) -> dict[str, Any]:
    """``{input_schema, output_schema, state_schema, config_schema, context_schema}``."""
    return {
        "input_schema": _attempt("input", graph, graph.get_input_jsonschema),
        "output_schema": _attempt("output", graph, graph.get_output_jsonschema),
        "state_schema": _attempt("state", graph, lambda: _state_schema(graph)),
        "config_schema": _attempt("config", graph, lambda: _configurable_schema(graph)),
        "context_schema": _attempt("context", graph, graph.get_context_jsonschema),
    }


def drawing(graph: Graph, xray: bool | int) -> dict[str, Any]:
    """``get_graph(xray=...).to_json()`` without the node ``data.id`` (as the platform)."""
    try:
        drawn: dict[str, Any] = graph.get_graph(xray=xray).to_json()
    except NotImplementedError:
        raise Invalid(_NOT_DRAWABLE, field="xray") from None
    for node in drawn.get("nodes", []):
        data = node.get("data")
        if isinstance(data, dict):
            data.pop("id", None)
    return drawn


def subgraphs(graph: Graph, namespace: str | None, recurse: bool) -> dict[str, Any]:
    """``{namespace: graph_schemas(subgraph)}``; ``{}`` for a graph without subgraphs."""
    try:
        found = list(graph.get_subgraphs(namespace=namespace, recurse=recurse))
    except NotImplementedError:
        raise Invalid(_NOT_DRAWABLE) from None
    return {ns: graph_schemas(sub) for ns, sub in found}  # type: ignore[arg-type]
