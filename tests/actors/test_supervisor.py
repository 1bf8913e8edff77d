"""Ring 1: the supervision machinery under MockClock (no real I/O)."""

from __future__ import annotations

import socket
from functools import partial

import pytest
import trio
import trio.testing

from aegra.supervisor.policy import ActorSpec, CrashLoop, RestartPolicy
from aegra.supervisor.root import Supervisor
from aegra.supervisor.sdnotify import Notifier

NO_JITTER = RestartPolicy(max_restarts=10, window_s=1000, backoff_initial_s=0.5,
                          backoff_max_s=30, jitter=0)


def leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        assert len(exc.exceptions) == 1, exc
        exc = exc.exceptions[0]
    return exc


async def test_crashing_actor_restarts_with_exponential_backoff(autojump_clock):
    starts: list[float] = []

    async def flaky(*, task_status=trio.TASK_STATUS_IGNORED):
        starts.append(trio.current_time())
        task_status.started()
        await trio.sleep(1)
        raise RuntimeError("boom")

    sup = Supervisor(policy=NO_JITTER, drain_timeout_s=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sup.run, work=[ActorSpec("flaky", flaky)]))
        await trio.sleep(7)
        sup.request_shutdown()
    # crash at 1 -> +0.5; crash at 2.5 -> +1; crash at 4.5 -> +2 (6.5)
    assert starts == [0, 1.5, 3.5, 6.5]
    assert sup.board.actors["flaky"].restarts == 3
    assert "boom" in sup.board.actors["flaky"].last_error


async def test_backoff_is_capped_and_jittered_downwards():
    import random

    policy = RestartPolicy(backoff_initial_s=1, backoff_max_s=8, jitter=0.5)
    rng = random.Random(7)
    for crashes, cap in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delay = policy.delay(crashes, rng)
        assert cap * 0.5 <= delay <= cap


async def test_crash_loop_ends_the_supervisor_with_an_error(autojump_clock):
    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=1, jitter=0)
    attempts: list[float] = []

    async def always_fails(*, task_status=trio.TASK_STATUS_IGNORED):
        attempts.append(trio.current_time())
        task_status.started()
        raise ValueError("bad config in actor")

    sup = Supervisor(policy=policy, drain_timeout_s=1)
    with pytest.raises(BaseException) as info:
        await sup.run(outer=[ActorSpec("reaper", always_fails)])
    crash = leaf(info.value)
    assert isinstance(crash, CrashLoop) and crash.actor == "reaper"
    # first run + 3 restarts (backoff 1, 2, 4), the 4th crash within the window is fatal
    assert attempts == [0, 1, 3, 7]
    assert sup.board.actors["reaper"].status == "failed"


async def test_crashes_outside_the_window_do_not_count(autojump_clock):
    policy = RestartPolicy(max_restarts=1, window_s=10, backoff_initial_s=1, jitter=0)
    starts: list[float] = []

    async def crashes_every_30s(*, task_status=trio.TASK_STATUS_IGNORED):
        starts.append(trio.current_time())
        task_status.started()
        await trio.sleep(30)
        raise RuntimeError("rare")

    sup = Supervisor(policy=policy, drain_timeout_s=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sup.run, work=[ActorSpec("rare", crashes_every_30s)]))
        await trio.sleep(100)
        sup.request_shutdown()
    assert starts == [0, 31, 62, 93]


async def test_failure_of_a_non_restartable_actor_is_fatal_at_once(autojump_clock):
    async def http(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await trio.sleep(2)
        raise OSError("socket gone")

    sup = Supervisor(policy=NO_JITTER, drain_timeout_s=1)
    with pytest.raises(BaseException) as info:
        await sup.run(front=[ActorSpec("http", http, restartable=False)])
    assert isinstance(leaf(info.value), OSError)
    assert trio.current_time() == 2
    assert sup.board.actors["http"].restarts == 0


async def test_an_actor_that_returns_is_restarted(autojump_clock):
    starts: list[float] = []

    async def returns(*, task_status=trio.TASK_STATUS_IGNORED):
        starts.append(trio.current_time())
        task_status.started()
        await trio.sleep(1)

    sup = Supervisor(policy=NO_JITTER, drain_timeout_s=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sup.run, work=[ActorSpec("r", returns)]))
        await trio.sleep(2)
        sup.request_shutdown()
    assert starts == [0, 1.5]


async def test_ready_only_after_every_actor_started_in_order(autojump_clock, tmp_path):
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.setblocking(False)
    order: list[tuple[str, float]] = []

    def slow_start(name: str, delay: float):
        async def actor(*, task_status=trio.TASK_STATUS_IGNORED):
            await trio.sleep(delay)
            order.append((name, trio.current_time()))
            task_status.started()
            await trio.sleep_forever()
        return ActorSpec(name, actor)

    sup = Supervisor(policy=NO_JITTER, drain_timeout_s=1, notifier=Notifier(path))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(
            sup.run, outer=[slow_start("heartbeater", 1)], work=[slow_start("worker", 2)],
            front=[slow_start("http", 3)]))
        await trio.sleep(5.9)
        assert not sup.board.ready
        with pytest.raises(BlockingIOError):
            listener.recv(64)
        await trio.sleep(0.2)
        assert sup.board.ready
        assert listener.recv(64) == b"READY=1"
        sup.request_shutdown()
    assert order == [("heartbeater", 1), ("worker", 3), ("http", 6)]
    assert listener.recv(64) == b"STOPPING=1"
    listener.close()


async def test_drain_deadline_cancels_what_is_left_exactly_at_the_deadline(autojump_clock):
    events: list[tuple[str, float]] = []

    async def worker(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        async with trio.open_nursery() as runs:
            runs.start_soon(one_run, "quick", 3)
            runs.start_soon(one_run, "slow", 1000)
            await trio.sleep_forever()

    async def one_run(run_id: str, duration: float):
        with sup.registry.open(run_id):
            try:
                await trio.sleep(duration)
                events.append((f"{run_id}.done", trio.current_time()))
            except trio.Cancelled:
                events.append((f"{run_id}.cancelled", trio.current_time()))
                raise

    async def heartbeater(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        try:
            while True:
                await trio.sleep(1)
        finally:
            events.append(("heartbeater.stopped", trio.current_time()))

    async def http(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await sup.http_stop.wait()
        events.append(("http.stopping", trio.current_time()))

    sup = Supervisor(policy=NO_JITTER, drain_timeout_s=10)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sup.run, outer=[ActorSpec("heartbeater", heartbeater)],
                                    work=[ActorSpec("worker", worker)],
                                    front=[ActorSpec("http", http, restartable=False)]))
        await trio.sleep(1)
        sup.request_shutdown()
        await trio.testing.wait_all_tasks_blocked()
        assert sup.board.draining and sup.intake_stopped.is_set()
    assert events == [
        ("quick.done", 3),
        ("slow.cancelled", 11),  # shutdown at 1 + drain timeout 10
        ("http.stopping", 11),
        ("heartbeater.stopped", 11),
    ]


async def test_drain_ends_early_when_runs_finish(autojump_clock):
    finished: list[float] = []

    async def worker(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        with sup.registry.open("r1"):
            await trio.sleep(4)
        await trio.sleep_forever()

    sup = Supervisor(policy=NO_JITTER, drain_timeout_s=30)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sup.run, work=[ActorSpec("worker", worker)]))
        sup.request_shutdown()
    finished.append(trio.current_time())
    assert finished == [4]


async def test_second_signal_skips_the_drain(autojump_clock):
    async def worker(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        with sup.registry.open("forever"):
            await trio.sleep_forever()

    sup = Supervisor(policy=NO_JITTER, drain_timeout_s=30)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sup.run, work=[ActorSpec("worker", worker)]))
        sup.request_shutdown()
        await trio.sleep(2)
        sup.request_shutdown()
    assert trio.current_time() == 2


async def test_registry_cancel_records_the_reason_first(autojump_clock):
    sup = Supervisor(policy=NO_JITTER, drain_timeout_s=1)
    seen: list[str | None] = []

    async def run():
        with sup.registry.open("r") as entry:
            try:
                await trio.sleep_forever()
            finally:
                seen.append(entry.reason)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await trio.testing.wait_all_tasks_blocked()
        assert "r" in sup.registry
        assert sup.registry.cancel("r", "interrupt")
        assert not sup.registry.cancel("nope", "interrupt")
    assert seen == ["interrupt"]
    assert len(sup.registry) == 0
