"""Every adapter satisfies the ports its consumers are typed against, structurally.

Checked twice: by mypy --strict (``.venv/bin/mypy tests/unit/test_port_conformance.py``:
each ``_check_*`` function assigns adapters to port-typed names, so a method missing or
with a wrong signature is a type error), and here at run time with ``isinstance`` on the
``@runtime_checkable`` ports (method names only: signatures are mypy's job). Building
the adapters opens no connection.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from aegra.adapters.langgraph.graphs import GraphRegistry
from aegra.adapters.langgraph.runner import LangGraphRunner
from aegra.adapters.memory.assistants import MemoryAssistants
from aegra.adapters.memory.broker import MemoryBroker, MemoryProducer, MemorySubscription, _Log
from aegra.adapters.memory.cancel import MemoryCancelBus
from aegra.adapters.memory.queue import MemoryQueue
from aegra.adapters.memory.run_store import MemoryRuns
from aegra.adapters.memory.runs import MemoryRunStore
from aegra.adapters.memory.threads import MemoryThreads
from aegra.adapters.memory.webhooks import MemoryWebhookOutbox
from aegra.adapters.postgres.broker import PgBroker, PgProducer, PgSubscription
from aegra.adapters.postgres.cancel import PgCancelBus
from aegra.adapters.postgres.leases import PgLeases
from aegra.adapters.postgres.listen import PgListener
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.queue import PgJobQueue
from aegra.adapters.postgres.runs import PgRuns
from aegra.adapters.postgres.webhooks import PgWebhookOutbox
from aegra.adapters.redis.broker import RedisBroker, RedisProducer, RedisSubscription
from aegra.adapters.redis.cancel import RedisCancelBus
from aegra.adapters.redis.queue import RedisQueue
from aegra.domain.ports import (
    CancelBus,
    EventBroker,
    GraphIds,
    GraphRunner,
    JobQueue,
    LeaseStore,
    Producer,
    RunClaims,
    RunStore,
    Subscription,
)
from aegra.domain.resource_ports import ActiveRuns
from aegra.domain.webhook_outbox import WebhookOutbox


def _pool() -> PgPool:
    return PgPool("postgresql://unused@127.0.0.1:1/none")


def _listener() -> PgListener:
    return PgListener("postgresql://unused@127.0.0.1:1/none")  # connects only on open()


def _redis() -> aioredis.Redis:
    return aioredis.Redis()  # lazy: connects on its first command, never sent here


def _memory_runs() -> MemoryRuns:
    return MemoryRuns(MemoryThreads(), MemoryAssistants(["agent"]))


def _check_queues() -> list[JobQueue]:
    return [MemoryQueue(), RedisQueue(_redis(), _pool(), poll_s=1.0),
            PgJobQueue(_pool(), _listener(), poll_s=1.0)]


def _check_brokers() -> list[EventBroker]:
    return [MemoryBroker(), RedisBroker(_redis()), PgBroker(_pool(), _listener())]


def _check_producers() -> list[Producer]:
    memory: Producer = MemoryBroker().producer("r")
    redis: Producer = RedisBroker(_redis()).producer("r")
    return [memory, redis, MemoryProducer(MemoryBroker(), "r"),
            RedisProducer(RedisBroker(_redis()), "r"),
            PgProducer(PgBroker(_pool(), _listener()), "r")]


def _check_subscriptions() -> list[Subscription]:
    return [MemorySubscription(_Log(), 8), RedisSubscription(RedisBroker(_redis()), "r", 0, 8),
            PgSubscription(PgBroker(_pool(), _listener()), "r", 0)]


def _check_cancel_buses() -> list[CancelBus]:
    broker = RedisBroker(_redis())
    return [MemoryCancelBus(), RedisCancelBus(broker.client, broker.fanout),
            PgCancelBus(_pool(), _listener())]


def _check_lease_stores() -> list[LeaseStore]:
    return [MemoryRunStore(), PgLeases(_pool())]


def _check_run_claims() -> list[RunClaims]:
    return [MemoryRunStore(), _memory_runs(), PgRuns(_pool())]


def _check_run_stores() -> list[RunStore]:
    return [_memory_runs(), PgRuns(_pool())]


def _check_active_runs() -> list[ActiveRuns]:
    return [_memory_runs(), PgRuns(_pool())]


def _check_webhook_outboxes() -> list[WebhookOutbox]:
    return [MemoryWebhookOutbox(), PgWebhookOutbox(_pool())]


def _check_runners() -> list[GraphRunner]:
    return [LangGraphRunner(GraphRegistry({}))]


def _check_graph_ids() -> list[GraphIds]:
    return [GraphRegistry({})]


CASES = [
    (JobQueue, _check_queues), (EventBroker, _check_brokers), (Producer, _check_producers),
    (Subscription, _check_subscriptions), (CancelBus, _check_cancel_buses),
    (LeaseStore, _check_lease_stores), (RunClaims, _check_run_claims),
    (RunStore, _check_run_stores), (GraphRunner, _check_runners),
    (WebhookOutbox, _check_webhook_outboxes),
]


@pytest.mark.parametrize(("port", "adapters"), CASES, ids=[p.__name__ for p, _ in CASES])
def test_adapters_have_every_method_of_their_port(port: type, adapters: object) -> None:
    assert callable(adapters)
    made = adapters()
    assert made, "every port has at least one adapter"
    for adapter in made:
        assert isinstance(adapter, port), f"{type(adapter).__name__} is not a {port.__name__}"


def test_a_fake_missing_a_method_is_refused() -> None:
    """The runtime check can fail: a queue without ``depth`` is no JobQueue."""

    class NoDepth:
        async def put(self, run_id: str, *, front: bool = False, delay_s: float = 0.0
                      ) -> None: ...
        async def get(self) -> str:
            return ""

    assert not isinstance(NoDepth(), JobQueue)
    assert not isinstance(MemoryBroker(), JobQueue)
