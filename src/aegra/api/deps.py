"""What request handlers need, built once by the root and stored on the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quart import current_app

from aegra.config import Config
from aegra.project import Project
from aegra.supervisor.registry import RunRegistry
from aegra.supervisor.state import Board


@dataclass
class Deps:
    config: Config
    project: Project
    board: Board
    registry: RunRegistry
    version: str
    pg: Any = None  # aegra.adapters.postgres.pool.PgPool
    langgraph: Any = None  # aegra.adapters.langgraph.persistence.LangGraphPersistence
    redis: Any = None  # aegra.adapters.redis.client.RedisClient | None
    graphs: Any = None  # aegra.adapters.langgraph.graphs.GraphRegistry (issue #3)
    features: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def deps() -> Deps:
    return current_app.extensions["aegra"]  # type: ignore[no-any-return]
