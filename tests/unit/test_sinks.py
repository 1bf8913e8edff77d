"""The sink registry shared by the Redis fanout and the PostgreSQL listener."""

from __future__ import annotations

import pytest

from aegra.adapters.sinks import SinkRegistry


def test_first_sink_registers_before_confirming_and_last_one_drops_the_channel():
    dropped = []
    reg: SinkRegistry[str, str] = SinkRegistry(on_drop=dropped.append)
    got_a, got_b = [], []
    with reg.registering("c", got_a.append) as first:
        assert first and "c" in reg  # registered while the subscription is being confirmed
        reg.deliver("c", "early")
    with reg.registering("c", got_b.append) as first:
        assert not first
    reg.deliver("c", "one")
    reg.deliver("other", "nobody")
    reg.broadcast("all")
    assert got_a == ["early", "one", "all"] and got_b == ["one", "all"]
    assert reg.channels() == ["c"] and len(reg) == 1

    assert reg.forget("c", got_a.append) is False and dropped == []
    assert reg.forget("c", got_b.append) is True and dropped == ["c"]
    assert "c" not in reg and not reg
    assert reg.forget("c", got_b.append) is False  # unknown channel: nothing to drop


def test_a_failed_or_cancelled_registration_leaves_nothing_behind():
    dropped = []
    reg: SinkRegistry[str, str] = SinkRegistry(on_drop=dropped.append)
    with pytest.raises(RuntimeError), reg.registering("c", print):
        raise RuntimeError("not confirmed")
    assert not reg and dropped == ["c"]

    keep = []
    with reg.registering("c", keep.append):
        pass
    with pytest.raises(KeyboardInterrupt), reg.registering("c", print):
        raise KeyboardInterrupt  # BaseException too (trio.Cancelled is one)
    assert reg.channels() == ["c"] and dropped == ["c"]  # the earlier sink stays
    reg.deliver("c", "x")
    assert keep == ["x"]
