"""Ring 2: store item TTLs on a real PostgreSQL, through the ``StoreItems`` adapter on
LangGraph's store: an expired item is gone from reads at once, before any sweep."""

from __future__ import annotations

import psycopg
import trio

from aegra.adapters import aio
from aegra.adapters.langgraph.persistence import LangGraphPersistence
from aegra.adapters.langgraph.schema import ensure_langgraph_tables
from aegra.adapters.langgraph.store import PgItemStore
from aegra.adapters.langgraph.store_index import ttl_config
from aegra.project import StoreTtlCfg

TINY = 0.02  # minutes: 1.2 s


async def test_expired_item_is_not_returned_before_any_sweep(database_url):
    ensure_langgraph_tables(database_url)
    # default_ttl applies to items put without one; no sweep_interval: nothing deletes rows
    cfg = ttl_config(StoreTtlCfg(default_ttl=TINY, refresh_on_read=False))
    async with aio.open_loop():
        lg = LangGraphPersistence(database_url, max_size=2, store_ttl=cfg)
        await lg.open()
        store = PgItemStore(lg, semantic=False, ttl_enabled=True)
        try:
            await store.put(("ns",), "short", {"v": 1}, index=False, ttl=None)  # default
            await store.put(("ns",), "own", {"v": 2}, index=False, ttl=TINY)
            await store.put(("ns",), "long", {"v": 3}, index=False, ttl=60)
            assert (await store.get(("ns",), "short", refresh_ttl=None)) is not None
            with trio.fail_after(15):
                while await store.get(("ns",), "own", refresh_ttl=None) is not None:  # noqa: ASYNC110  expiry is a time in PostgreSQL: poll it
                    await trio.sleep(0.1)
            assert await store.get(("ns",), "short", refresh_ttl=None) is None
            found = await store.search(("ns",), filter=None, limit=10, offset=0, query=None,
                                       refresh_ttl=None)
            namespaces = await store.list_namespaces(prefix=None, suffix=None, max_depth=None,
                                                     limit=10, offset=0)
            long = await store.get(("ns",), "long", refresh_ttl=None)
        finally:
            await lg.close()
    assert [i.key for i in found] == ["long"]
    assert namespaces == [["ns"]]
    assert long is not None and long.value == {"v": 3}
    with psycopg.connect(database_url) as conn:
        # still stored: it was hidden by its expiry, not deleted by a sweep
        assert conn.execute("SELECT count(*) FROM store").fetchone()[0] == 3
