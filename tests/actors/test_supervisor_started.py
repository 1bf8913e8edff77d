"""Ring 1: what the supervisor reports as started, and when (STYLE §2: started() once,
when useful; the HTTP actor passes its bound addresses up to ``serve``)."""

from __future__ import annotations

from functools import partial

import trio
import trio.testing
from quart_trio import QuartTrio

from aegra.supervisor.http import run_http
from aegra.supervisor.policy import ActorSpec, RestartPolicy
from aegra.supervisor.root import Supervisor, run_until_stopped

NO_JITTER = RestartPolicy(max_restarts=10, window_s=1000, backoff_initial_s=0.5,
                          backoff_max_s=30, jitter=0)


def slow_start(name: str, delay: float, value: object = None,
               order: list[tuple[str, float]] | None = None) -> ActorSpec:
    async def actor(*, task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        await trio.sleep(delay)
        if order is not None:
            order.append((name, trio.current_time()))
        task_status.started(value)
        await trio.sleep_forever()
    return ActorSpec(name, actor)


async def test_start_returns_once_every_actor_started_with_what_each_reported(
        autojump_clock: trio.testing.MockClock) -> None:
    order: list[tuple[str, float]] = []
    sup = Supervisor(policy=NO_JITTER, drain_timeout_s=1)
    async with trio.open_nursery() as nursery:
        started = await nursery.start(partial(
            sup.run, outer=[slow_start("heartbeater", 1, order=order)],
            work=[slow_start("worker", 2, order=order)],
            front=[slow_start("http", 3, ["http://127.0.0.1:2026"], order=order)]))
        assert trio.current_time() == 6  # 1 + 2 + 3: in order, nothing returned early
        assert sup.board.ready
        assert order == [("heartbeater", 1), ("worker", 3), ("http", 6)]
        assert started == {"heartbeater": None, "worker": None,
                           "http": ["http://127.0.0.1:2026"]}
        sup.request_shutdown()


async def test_run_until_stopped_reports_after_ready_exactly_once(
        autojump_clock: trio.testing.MockClock) -> None:
    sup = Supervisor(policy=NO_JITTER, drain_timeout_s=1)
    seen_ready_at_http_start: list[bool] = []

    async def http(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                   ) -> None:
        seen_ready_at_http_start.append(sup.board.ready)
        await trio.sleep(2)
        task_status.started(["http://[::1]:8000"])
        await sup.http_stop.wait()

    async with trio.open_nursery() as nursery:
        started = await nursery.start(partial(
            run_until_stopped, sup, outer=[slow_start("heartbeater", 1)],
            front=[ActorSpec("http", http, restartable=False)]))
        assert sup.board.ready and seen_ready_at_http_start == [False]
        assert started["http"] == ["http://[::1]:8000"]
        assert trio.current_time() == 3
        sup.request_shutdown()
    assert sup.board.stopping


async def test_the_http_actors_bound_addresses_reach_the_caller() -> None:
    """The real HTTP actor on port 0 (no clock tricks: a real socket): the address the
    supervisor reports is the one that answers."""
    app = QuartTrio("started")

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    sup = Supervisor(policy=NO_JITTER, drain_timeout_s=1, http_grace_s=2)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(20):
            started = await nursery.start(partial(
                run_until_stopped, sup, front=[ActorSpec("http", partial(
                    run_http, app, "127.0.0.1", 0, sup.http_stop, grace_s=1),
                    restartable=False)]))
        [address] = started["http"]
        assert address.startswith("http://127.0.0.1:")
        port = int(address.rsplit(":", 1)[1])
        assert port > 0
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n"
                                      b"Connection: close\r\n\r\n")
                reply = b""
                while not reply.endswith(b"pong"):  # hypercorn may hold the socket open
                    reply += await stream.receive_some()
        assert reply.startswith(b"HTTP/1.1 200")
        sup.request_shutdown()
