"""TTL rules and settings: the claim rule, batch continuation, the sweep interval's
sources, ``checkpointer.ttl`` in the project file and ``[sweeper]`` in the config."""

from __future__ import annotations

import json

import pytest

from aegra import config, project
from aegra.config import ConfigError
from aegra.domain.ttl import SweepBatch, interval_s, more_to_do, pause_s, sweepable


def test_claim_rule():
    assert sweepable(expires_at=10, now=10, busy=False, active_run=False)
    assert not sweepable(expires_at=11, now=10, busy=False, active_run=False)
    assert not sweepable(expires_at=None, now=10, busy=False, active_run=False)
    assert not sweepable(expires_at=1, now=10, busy=True, active_run=False)
    assert not sweepable(expires_at=1, now=10, busy=False, active_run=True)


def test_full_batch_means_more_and_interval_sources():
    assert more_to_do(SweepBatch(claimed=100), 100)
    assert not more_to_do(SweepBatch(claimed=99), 100)
    assert interval_s(None, 0.0) == 300.0  # the platform's default
    assert interval_s(60, 0.0) == 3600.0  # checkpointer.ttl.sweep_interval_minutes
    assert interval_s(60, 0.5) == 0.5  # [sweeper] interval_s wins when set
    assert pause_s(0.001, max_duty=0.1, min_pause_s=0.05) == 0.05  # the floor
    assert pause_s(1.0, max_duty=0.1, min_pause_s=0.05) == pytest.approx(9.0)


def _load(tmp_path, doc):
    path = tmp_path / "aegra.json"
    path.write_text(json.dumps({"graphs": {}, **doc}))
    return project.load(path)


def test_checkpointer_ttl_from_project(tmp_path):
    ttl = {"strategy": "keep_latest", "default_ttl": 43200, "sweep_interval_minutes": 60}
    got = _load(tmp_path, {"checkpointer": {"ttl": ttl, "serde": {}}}).checkpointer.ttl
    assert got is not None
    assert (got.strategy, got.default_ttl, got.sweep_interval_minutes) == (
        "keep_latest", 43200, 60)
    assert _load(tmp_path, {}).checkpointer.ttl is None


@pytest.mark.parametrize(("ttl", "expected"), [
    ({"strategy": "archive"}, "checkpointer.ttl.strategy = 'archive'"),
    ({"default_ttl": 0}, "checkpointer.ttl.default_ttl = 0"),
    ({"sweep_interval_minutes": -1}, "checkpointer.ttl.sweep_interval_minutes = -1"),
    ({"default": 5}, "checkpointer.ttl.default = 5"),
])
def test_bad_checkpointer_ttl_names_the_key(tmp_path, ttl, expected):
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        _load(tmp_path, {"checkpointer": {"ttl": ttl}})


def test_sweeper_section_from_env():
    cfg = config.load(None, {"AEGRA__SWEEPER__BATCH_SIZE": "25",
                             "AEGRA__SWEEPER__INTERVAL_S": "0.5"}).config
    assert (cfg.sweeper.batch_size, cfg.sweeper.interval_s, cfg.sweeper.enabled) == (
        25, 0.5, True)
    with pytest.raises(ConfigError, match="sweeper.batch_size"):
        config.load(None, {"AEGRA__SWEEPER__BATCH_SIZE": "0"})
