"""The drain waits for the runs of the registry the workers use (the one ``serve`` passes).

Found by the chaos benchmark (bench/chaos.py): ``Supervisor(registry=...)`` kept
``registry or RunRegistry()``; an empty RunRegistry is falsy (``__len__``), so the
supervisor always made a registry of its own, no worker ever registered a run in it, and
on SIGTERM every in-flight run was handed back at once instead of getting
``WORKER_DRAIN_TIMEOUT`` to finish.
"""

from __future__ import annotations

from functools import partial

import trio

from aegra.adapters.memory.runs import MemoryRunStore
from aegra.runtime.capacity import Capacity
from aegra.runtime.registry import RunRegistry
from aegra.supervisor.heartbeat import run_heartbeater
from aegra.supervisor.policy import ActorSpec, RestartPolicy
from aegra.supervisor.root import Supervisor
from aegra.supervisor.worker import run_worker
from tests.actors.test_leases import BEAT, LEASE, RecordingQueue, ScriptedRunner, worker_deps


def test_the_supervisor_keeps_the_registry_it_is_given() -> None:
    registry = RunRegistry()
    sup = Supervisor(policy=RestartPolicy(jitter=0), drain_timeout_s=1, registry=registry)
    assert sup.registry is registry


async def test_a_run_that_ends_within_the_drain_timeout_finishes_instead_of_being_handed_back(
        autojump_clock):
    store, queue, runner = MemoryRunStore(), RecordingQueue(), ScriptedRunner(30)
    registry = RunRegistry()  # as boot.serve does: one registry, passed to everyone
    sup = Supervisor(policy=RestartPolicy(jitter=0), drain_timeout_s=60, registry=registry)
    deps, finished = worker_deps(store, queue, runner, registry, "A", sup.intake_stopped)
    store.add("r")
    await queue.put("r")
    heartbeat = partial(run_heartbeater, store, registry, owner="A", lease_s=LEASE,
                        interval_s=BEAT)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sup.run, outer=[ActorSpec("heartbeater", heartbeat)],
                                    work=[ActorSpec("worker", partial(run_worker, deps,
                                                                      Capacity(1)))]))
        await trio.sleep(10)  # mid-run
        sup.request_shutdown()
    assert runner.cancelled == []
    assert finished == [("r", "success")]
    assert store.runs["r"].status == "success"
    assert trio.current_time() >= 30
