"""What request handlers need, built once by the root and stored on the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quart import current_app

from aegra.config import Config
from aegra.domain.ports import Authenticator, Probe
from aegra.project import Project
from aegra.runtime.board import Board
from aegra.runtime.registry import RunRegistry
from aegra.services.container import Services


@dataclass
class Deps:
    config: Config
    project: Project
    board: Board
    registry: RunRegistry
    version: str
    # Probed by /health and /ready only; handlers reach storage through ``services``.
    pg: Probe | None = None  # the PostgreSQL pool
    langgraph: Probe | None = None  # LangGraph's checkpointer pool
    redis: Probe | None = None  # Redis, when the broker uses it
    features: dict[str, Any] = field(default_factory=dict)
    services: Services | None = None
    authenticator: Authenticator | None = None  # None: AUTH_TYPE=noop


def deps() -> Deps:
    found: Deps = current_app.extensions["aegra"]
    return found


def services() -> Services:
    found = deps().services
    if found is None:
        raise RuntimeError("services are not wired on this app")
    return found
