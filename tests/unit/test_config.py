"""Settings: defaults -> supervisor.toml -> environment, with one-line errors."""

from __future__ import annotations

import pytest

from aegra import config
from aegra.config import ConfigError


def test_defaults_match_the_product_documents():
    cfg = config.load(None, {}).config
    assert cfg.server.port == 2026
    assert cfg.worker.count == 3 and cfg.worker.jobs_per_worker == 10
    assert cfg.worker.job_timeout_s == 3600 and cfg.worker.max_retries == 3
    assert cfg.lease.duration_s == 30 and cfg.lease.heartbeat_interval_s == 10
    assert cfg.reaper.interval_s == 15 and cfg.reaper.stuck_pending_threshold_s == 120
    assert cfg.reaper.postgres_poll_interval_s == 5
    assert cfg.shutdown.drain_timeout_s == 30
    assert cfg.cron.max_per_user == 100 and cfg.cron.allow_seconds_schedule is False
    assert cfg.redis.enabled is False and cfg.redis.url == "redis://localhost:6379/0"
    assert cfg.postgres.run_migrations_on_startup is True


def test_toml_then_environment_later_wins(tmp_path):
    toml = tmp_path / "supervisor.toml"
    toml.write_text("[worker]\ncount = 5\njobs_per_worker = 2\n[lease]\nduration_s = 12.5\n")
    loaded = config.load(toml, {"WORKER_COUNT": "7", "AEGRA__CRON__TICK_INTERVAL_S": "0.25"})
    cfg = loaded.config
    assert cfg.worker.count == 7 and cfg.worker.jobs_per_worker == 2
    assert cfg.lease.duration_s == 12.5 and cfg.cron.tick_interval_s == 0.25
    assert loaded.sources["worker.count"] == "env WORKER_COUNT"
    assert loaded.sources["worker.jobs_per_worker"] == str(toml)
    assert loaded.sources["cron.tick_interval_s"] == "env AEGRA__CRON__TICK_INTERVAL_S"


def test_booleans_and_numbers_coerce_from_env_strings():
    cfg = config.load(None, {"REDIS_BROKER_ENABLED": "true", "ENABLE_PROMETHEUS_METRICS": "0",
                             "WORKER_DRAIN_TIMEOUT": "2.5"}).config
    assert cfg.redis.enabled is True and cfg.http.enable_metrics is False
    assert cfg.shutdown.drain_timeout_s == 2.5


def test_database_url_wins_over_postgres_parts():
    env = {"DATABASE_URL": "postgresql://u:p@db:5432/x", "POSTGRES_HOST": "other",
           "POSTGRES_DB": "y"}
    assert config.load(None, env).config.postgres.dsn() == "postgresql://u:p@db:5432/x"
    parts = config.load(None, {"POSTGRES_HOST": "h", "POSTGRES_USER": "a b",
                               "POSTGRES_PASSWORD": "p@ss", "POSTGRES_DB": "d"}).config
    assert parts.postgres.dsn() == "postgresql://a%20b:p%40ss@h:5432/d"


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        (None, {"WORKER_COUNT": "abc"},
         "config error: worker.count = 'abc' (env WORKER_COUNT): expected `int`, got `str`"),
        ("[worker]\ncuont = 3\n", {},
         "config error: worker.cuont = 3 ({toml}): unknown setting"),
        ("[nosuch]\nx = 1\n", {}, "config error: nosuch = {{'x': 1}} ({toml}): unknown section"),
        (None, {"LOG_LEVEL": "LOUD"}, "config error: log.level = 'LOUD' (env LOG_LEVEL)"),
        (None, {"N_JOBS_PER_WORKER": "0"},
         "config error: worker.jobs_per_worker = 0 (env N_JOBS_PER_WORKER): must be >= 1"),
        (None, {"HEARTBEAT_INTERVAL_SECONDS": "40"},
         "config error: lease.heartbeat_interval_s = 40.0 (env HEARTBEAT_INTERVAL_SECONDS)"),
    ],
)
def test_bad_values_name_key_value_and_source(tmp_path, toml, env, expected):
    path = None
    if toml is not None:
        path = tmp_path / "supervisor.toml"
        path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        config.load(path, env)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(expected.format(toml=path)), message


def test_describe_masks_secrets():
    loaded = config.load(None, {"DATABASE_URL": "postgresql://me:hunter2@db/x",
                                "POSTGRES_PASSWORD": "hunter2"})
    rows = {key: (value, source) for key, value, source in loaded.describe()}
    assert "hunter2" not in rows["postgres.url"][0] and "me:****@" in rows["postgres.url"][0]
    assert rows["postgres.password"] == ("****", "env POSTGRES_PASSWORD")
    assert rows["worker.count"] == ("3", "default")
