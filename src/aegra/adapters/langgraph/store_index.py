"""Options of LangGraph's store from ``aegra.json`` ``store``: semantic index and TTL.

``store.index.embed`` is ``./file.py:attr`` or ``module:attr`` (a function
``list[str] -> list[list[float]]``, sync or async, or a LangChain ``Embeddings``), or a
``provider:model`` string for LangChain's ``init_embeddings``. The embedder is built at
startup so a bad value stops the process with one line naming the key, instead of the
first search failing. Semantic search also needs pgvector; without it we warn once and
run the store without an index, and ``/info`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio
from langchain_core.embeddings import Embeddings
from langgraph.store.base import ensure_embeddings

from aegra import imports
from aegra.adapters.langgraph.schema import ensure_store_vectors
from aegra.config import Config, ConfigError
from aegra.logs import get_logger
from aegra.project import Project, StoreTtlCfg

log = get_logger("aegra.store")


@dataclass(frozen=True)
class StoreOptions:
    index: dict[str, Any] | None = None  # PostgresIndexConfig for AsyncPostgresStore
    ttl: dict[str, Any] | None = None  # TTLConfig

    @property
    def semantic(self) -> bool:
        return self.index is not None


def ttl_config(cfg: StoreTtlCfg | None) -> dict[str, Any] | None:
    if cfg is None:
        return None
    # omit_expired: reads skip an expired item at once, not only after the next sweep
    # (LangGraph's default serves it until its sweeper deletes it).
    out: dict[str, Any] = {"refresh_on_read": cfg.refresh_on_read,
                           "default_ttl": cfg.default_ttl, "omit_expired": True}
    if cfg.sweep_interval_minutes:
        out["sweep_interval_minutes"] = cfg.sweep_interval_minutes
    return out


def _is_missing_module(exc: imports.TargetError, target: str) -> bool:
    cause = exc.__cause__
    return isinstance(cause, ModuleNotFoundError) and cause.name == target


def embeddings(spec: str, project: Project) -> Embeddings:
    """Resolve ``store.index.embed``; raise ``ValueError``/``TargetError`` on a bad one."""
    target, _, attr = spec.rpartition(":")
    obj: Any
    if imports.is_file_target(target):
        obj = imports.load(spec, project.root)
    else:
        try:
            obj = imports.load(spec, project.root)
        except imports.TargetError as exc:
            # "openai:text-embedding-3-small" looks like module:attr; it is a provider
            # string when no such top-level module (or attribute) exists. Provider names
            # have no dots; errors raised inside a module that exists are the user's.
            if "." in target or (exc.__cause__ is not None
                                 and not _is_missing_module(exc, target)):
                raise
            obj = spec
    if isinstance(obj, Embeddings):
        return obj
    if isinstance(obj, str) or callable(obj):
        return ensure_embeddings(obj)
    raise ValueError(f"{spec} is {type(obj).__name__}, not a function or Embeddings")


async def prepare(cfg: Config, project: Project) -> StoreOptions:
    """Build the store options; prepare pgvector tables when an index is configured."""
    ttl = ttl_config(project.store.ttl)
    idx = project.store.index
    if idx is None:
        return StoreOptions(ttl=ttl)
    try:
        embed = embeddings(idx.embed, project)
    except Exception as exc:  # noqa: BLE001  any failure here is a configuration error
        raise ConfigError(f"config error: store.index.embed = {idx.embed!r} "
                          f"({project.source or 'aegra.json'}): {exc}") from exc
    index: dict[str, Any] = {"dims": idx.dims, "embed": embed}
    if idx.fields:
        index["fields"] = list(idx.fields)
    reason = await trio.to_thread.run_sync(
        ensure_store_vectors, cfg.postgres.dsn(), index,
        cfg.postgres.run_migrations_on_startup)
    if reason is not None:
        log.warning("store.semantic_search_disabled", reason=reason,
                    hint="install pgvector or run `CREATE EXTENSION vector` as a superuser")
        return StoreOptions(ttl=ttl)
    log.info("store.semantic_search_enabled", dims=idx.dims, fields=idx.fields or ["$"])
    return StoreOptions(index=index, ttl=ttl)
