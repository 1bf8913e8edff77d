"""What the supervisor knows about itself, read by /health, /ready and /metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ActorState:
    name: str
    # starting | running | restarting (after a crash) | waiting (store unreachable) |
    # stopped | failed (crash loop or a non-restartable actor: the process is ending)
    status: str = "starting"
    restarts: int = 0  # crashes, restarted
    outages: int = 0  # StoreUnavailable, waited out (never a crash)
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
            name: {"status": a.status, "restarts": a.restarts, "outages": a.outages,
                   "last_error": a.last_error}
            for name, a in self.actors.items()
        }

    def workers_health(self) -> str:
        """The ``workers`` component of ``/health``, over every actor of this instance.

        ``unhealthy``: draining (this instance takes no more work) or an actor failed (the
        process is ending). ``degraded``: an actor is restarting after a crash, waiting out
        a store outage, or not started yet. ``healthy``: every actor is running.
        """
        statuses = {a.status for a in self.actors.values()}
        if self.draining or statuses & {"failed", "stopped"}:
            return "unhealthy"
        if not self.ready or statuses - {"running"}:
            return "degraded"
        return "healthy"
