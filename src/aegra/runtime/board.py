"""What the supervisor knows about itself, read by /health, /ready and /metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ActorState:
    name: str
    status: str = "starting"  # starting | running | restarting | stopped | failed
    restarts: int = 0
    last_error: str | None = None


@dataclass
class Board:
    actors: dict[str, ActorState] = field(default_factory=dict)
    ready: bool = False  # every actor reported started
    draining: bool = False  # shutdown began: intake stopped, /ready answers 503
    stopping: bool = False  # actors returning now is expected, not a crash

    def actor(self, name: str) -> ActorState:
        state = self.actors.get(name)
        if state is None:
            state = self.actors[name] = ActorState(name)
        return state

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {
            name: {"status": a.status, "restarts": a.restarts, "last_error": a.last_error}
            for name, a in self.actors.items()
        }
