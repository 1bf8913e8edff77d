"""``aegra serve --processes``: the count, the children's command line, the refusal."""

from __future__ import annotations

import os
import sys

import msgspec
import pytest

from aegra.config import Config, ConfigError
from aegra.supervisor.processes import child_argv, coordination_env, count


def test_count_takes_a_positive_number_or_auto() -> None:
    assert count("3") == 3
    assert count("auto") == len(os.sched_getaffinity(0))
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(ConfigError, match="--processes"):
            count(bad)


def test_children_run_the_same_command_without_processes() -> None:
    argv = ["serve", "--port", "9", "--processes", "4", "--host", "h", "--processes=2"]
    assert child_argv(argv) == [sys.executable, "-m", "aegra", "serve", "--port", "9",
                                "--host", "h"]


def _cfg(**sections: dict[str, object]) -> Config:
    return msgspec.convert(sections, Config)


def test_children_coordinate_through_redis_else_the_postgres_channel() -> None:
    assert coordination_env(_cfg(redis={"enabled": True})) == {}
    for cfg in (_cfg(), _cfg(server={"channel": "postgres"}),
                _cfg(server={"channel": "memory"})):  # never one queue per child
        assert coordination_env(cfg) == {"AEGRA_CHANNEL": "postgres"}
