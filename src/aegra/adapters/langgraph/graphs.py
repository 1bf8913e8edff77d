"""The graph registry: every graph of ``aegra.json``, imported once at startup.

``GraphRegistry.load`` imports each graph (a file through ``spec_from_file_location`` under
a module name unique to that file, a module through ``import_module``) and fails the boot
with one line naming the graph, its spec, the project file and the error. ``bind`` attaches
the server's checkpointer and store; ``open`` yields a graph wired to them: compiled graphs
are copied (cheap, no I/O), factories are called per open with the caller's config.
Introspection (``schemas``, ``drawing``, ``subgraphs``) of graphs that are not factories
is cached: the objects are immutable and Studio asks often.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore

from aegra.adapters import aio
from aegra.adapters.langgraph import factory, introspect
from aegra.adapters.langgraph.introspect import Graph
from aegra.domain.assistants import (  # re-exported: tests import it from here
    default_assistant_id as default_assistant_id,
)
from aegra.domain.errors import DomainError, NotFound
from aegra.imports import exec_file
from aegra.project import GraphSpec, Project

_DEFAULT_NAME = "LangGraph"  # what LangGraph calls a graph nobody named


class GraphLoadError(Exception):
    """A graph could not be loaded; ``str()`` is one line for the operator."""

    def __init__(self, graph_id: str, spec: str, source: str, error: BaseException) -> None:
        detail = " ".join(str(error).split()) or "(no message)"
        super().__init__(
            f"graphs.{graph_id} = {spec!r} ({source or 'project'}): "
            f"{type(error).__name__}: {detail}")
        self.graph_id = graph_id
        self.error = error


class GraphInvalid(DomainError):
    """A factory returned something that is not a graph (the platform answers 424)."""

    status = 424
    kind = "failed_dependency"


class _Entry:
    __slots__ = ("graph_id", "spec", "graph", "fn", "kwargs", "description")

    def __init__(self, spec: GraphSpec, graph: Graph | None,
                 fn: Callable[..., Any] | None, kwargs: factory.Kwargs | None) -> None:
        self.graph_id = spec.graph_id
        self.spec = spec
        self.graph = graph  # compiled graph, or None for a factory
        self.fn = fn
        self.kwargs = kwargs
        self.description = spec.description


def _module_name(path: str) -> str:
    """Unique per file, stable per file: two graphs of one file share one module."""
    stem = re.sub(r"\W", "_", Path(path).stem)
    return f"aegra_graph_{stem}_{hashlib.sha1(path.encode()).hexdigest()[:10]}"


def _import(spec: GraphSpec) -> ModuleType:
    if not spec.is_file:
        return importlib.import_module(spec.target)
    return exec_file(spec.target, _module_name(spec.target))


def _entry(spec: GraphSpec) -> _Entry:
    module = _import(spec)
    try:
        value = getattr(module, spec.attr)
    except AttributeError:
        raise AttributeError(f"{spec.target} has no attribute {spec.attr!r}") from None
    if isinstance(value, Pregel):
        return _Entry(spec, value, None, None)
    if isinstance(value, StateGraph):
        return _Entry(spec, value.compile(), None, None)
    if callable(value):
        return _Entry(spec, None, value, factory.classify(value))
    raise TypeError(
        f"{spec.attr!r} is a {type(value).__name__}, not a compiled graph, a StateGraph "
        "or a graph factory")


class GraphRegistry:
    def __init__(self, entries: dict[str, _Entry]) -> None:
        self._entries = entries
        self._checkpointer: BaseCheckpointSaver[Any] | None = None
        self._store: BaseStore | None = None
        self._cache: dict[tuple[Any, ...], dict[str, Any]] = {}
        # A static graph with the server's saver and store, made once and shared by every
        # run (a compiled graph is reentrant): a copy per run cost every open stream ~1 KB
        # for as long as it ran, and a StateGraph a compile.
        self._attached: dict[str, Graph] = {}

    @classmethod
    def load(cls, project: Project) -> GraphRegistry:
        for dep in project.dependencies:
            if str(dep) not in sys.path:
                sys.path.insert(0, str(dep))
        entries: dict[str, _Entry] = {}
        for graph_id, spec in project.graphs.items():
            try:
                entries[graph_id] = _entry(spec)
            except Exception as exc:
                raise GraphLoadError(graph_id, f"{spec.target}:{spec.attr}", project.source,
                                     exc) from exc
        return cls(entries)

    def bind(self, checkpointer: BaseCheckpointSaver[Any] | None, store: BaseStore | None
             ) -> None:
        self._checkpointer = checkpointer
        self._store = store
        self._attached.clear()

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any] | None:
        return self._checkpointer

    async def delete_checkpoints(self, thread_ids: list[str]) -> None:
        """Drop the checkpoints of deleted threads (one bridge crossing for all of them)."""
        saver = self._checkpointer
        if saver is None or not thread_ids:
            return

        async def _delete() -> None:
            for thread_id in thread_ids:
                await saver.adelete_thread(thread_id)
        await aio.call(_delete)

    def ids(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._entries

    def _get(self, graph_id: str) -> _Entry:
        try:
            return self._entries[graph_id]
        except KeyError:
            raise NotFound(f"Graph '{graph_id}' not found. Expected one of: "
                           f"{sorted(self._entries)}") from None

    def description(self, graph_id: str) -> str | None:
        return self._get(graph_id).description

    def default_name(self, graph_id: str) -> str:
        """The platform names a default assistant after its compiled graph, if named."""
        graph = self._get(graph_id).graph
        name = getattr(graph, "name", None)
        return name if name and name != _DEFAULT_NAME else graph_id

    def _attach(self, graph: object, graph_id: str) -> Graph:
        if isinstance(graph, StateGraph):
            graph = graph.compile()
        if not isinstance(graph, Pregel):
            raise GraphInvalid(f"Graph '{graph_id}' is not valid. Review graph registration. "
                               f"{type(graph).__name__}")
        update: dict[str, Any] = {"checkpointer": self._checkpointer, "store": self._store}
        if graph.name == _DEFAULT_NAME:
            update["name"] = graph_id
        return graph.copy(update=update)

    def open(self, graph_id: str, config: dict[str, Any] | None = None, *,
             access: str = "assistants.read", context: object = None,
             ) -> AbstractAsyncContextManager[Graph]:
        """The graph with the server's checkpointer and store; NotFound for unknown ids.

        ``access`` is the platform's ``ServerRuntime.access_context`` ("threads.create_run",
        "threads.update", "threads.read", "assistants.read"); ``context`` reaches a
        factory's runtime only when executing, as on the platform.
        """
        return self._open(self._get(graph_id), config, access, context)

    @asynccontextmanager
    async def _open(self, entry: _Entry, config: dict[str, Any] | None, access: str,
                    context: object) -> AsyncIterator[Graph]:
        if entry.graph is not None:
            graph = self._attached.get(entry.graph_id)
            if graph is None:
                graph = self._attached[entry.graph_id] = self._attach(entry.graph,
                                                                      entry.graph_id)
            yield graph
            return
        assert entry.fn is not None and entry.kwargs is not None
        runtime = factory.server_runtime(access, self._store, context)
        value = await factory.call(entry.fn, entry.kwargs(factory.factory_config(config), runtime))
        async with factory.materialize(value) as made:
            yield self._attach(made, entry.graph_id)

    async def _introspect(self, key: tuple[Any, ...], config: dict[str, Any] | None,
                          fn: Callable[[Graph], dict[str, Any]]) -> dict[str, Any]:
        entry = self._get(key[1])
        cacheable = entry.graph is not None
        if cacheable and key in self._cache:
            return self._cache[key]
        async with self.open(entry.graph_id, config) as graph:
            result = fn(graph)
        if cacheable:
            self._cache[key] = result
        return result

    async def schemas(self, graph_id: str, config: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
        found = await self._introspect(("schemas", graph_id), config, introspect.graph_schemas)
        return {"graph_id": graph_id, **found}

    async def drawing(self, graph_id: str, config: dict[str, Any] | None,
                      xray: bool | int) -> dict[str, Any]:
        # repr: True == 1 as a dict key, but xray=True (all levels) differs from xray=1.
        return await self._introspect(("drawing", graph_id, repr(xray)), config,
                                      lambda g: introspect.drawing(g, xray))

    async def subgraphs(self, graph_id: str, config: dict[str, Any] | None,
                        namespace: str | None, recurse: bool) -> dict[str, Any]:
        return await self._introspect(("subgraphs", graph_id, namespace, recurse), config,
                                      lambda g: introspect.subgraphs(g, namespace, recurse))
