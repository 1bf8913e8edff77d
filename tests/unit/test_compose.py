"""`aegra up` / `aegra down`: the exact docker commands, and one clear line without Docker.

A fake ``docker`` (a shell script that records its arguments) stands in for the engine;
the commands run as real ``python -m aegra`` processes with PATH pointing at it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from aegra import compose

REPO = Path(__file__).resolve().parents[2]
FAKE_DOCKER = """#!/bin/sh
# Record one invocation per line, arguments separated by tabs.
(IFS='\t'; echo "$*") >> "$DOCKER_LOG"
case "$1" in
  info) exit "${FAIL_INFO:-0}" ;;
  compose) [ "$2" = version ] && exit "${FAIL_COMPOSE:-0}" ;;
esac
exit 0
"""


def _aegra(cwd: Path, path_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "PATH"}
    full.update(PATH=str(path_dir), DOCKER_LOG=str(cwd / "docker.log"), **env)
    return subprocess.run([sys.executable, "-m", "aegra", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=60)


def _fake_docker(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(FAKE_DOCKER)
    script.chmod(0o755)
    return bin_dir


def _calls(cwd: Path) -> list[list[str]]:
    return [line.split("\t") for line in (cwd / "docker.log").read_text().splitlines()]


PROBES = [["compose", "version"], ["info", "--format", "{{.ServerVersion}}"]]


def test_without_docker_one_line_and_exit_1(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    for command in (["up"], ["down", "--volumes"]):
        done = _aegra(tmp_path, empty, *command)
        assert done.returncode == 1
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"aegra: `aegra {command[0]}` needs Docker with the compose "
                                   "plugin, and no Docker engine is reachable here")
        assert "docker is not on PATH" in lines[0]
        assert "`aegra dev` (embedded PostgreSQL)" in lines[0] and "DATABASE_URL" in lines[0]
    assert not (tmp_path / "compose.yaml").exists()  # nothing written when it cannot run


def test_missing_compose_plugin_or_daemon(tmp_path):
    bin_dir = _fake_docker(tmp_path)
    plugin = _aegra(tmp_path, bin_dir, "up", FAIL_COMPOSE="1")
    assert plugin.returncode == 1 and "compose plugin is missing" in plugin.stderr
    daemon = _aegra(tmp_path, bin_dir, "up", FAIL_INFO="1")
    assert daemon.returncode == 1 and "daemon is not running" in daemon.stderr
    assert len(daemon.stderr.strip().splitlines()) == 1
    assert _calls(tmp_path) == [PROBES[0], *PROBES]
    assert not (tmp_path / "compose.yaml").exists()


def test_up_writes_compose_file_and_runs_exact_commands(tmp_path):
    bin_dir = _fake_docker(tmp_path)
    cwd = tmp_path.resolve()
    file = str(cwd / "compose.yaml")

    first = _aegra(cwd, bin_dir, "up", "--no-build")
    assert first.returncode == 0, first.stderr
    assert "wrote compose.yaml" in first.stdout
    assert f"$ docker compose -f {file} up -d" in first.stdout
    assert (cwd / "compose.yaml").read_text() == compose.template()

    second = _aegra(cwd, bin_dir, "up", "postgres", "redis")
    assert second.returncode == 0, second.stderr
    assert "wrote compose.yaml" not in second.stdout  # found, not rewritten

    third = _aegra(cwd, bin_dir, "down", "--volumes")
    assert third.returncode == 0, third.stderr

    assert _calls(cwd) == [
        *PROBES, ["compose", "-f", file, "up", "-d"],
        *PROBES, ["compose", "-f", file, "up", "-d", "--build", "postgres", "redis"],
        *PROBES, ["compose", "-f", file, "down", "--volumes"],
    ]


def test_explicit_and_detected_files(tmp_path):
    bin_dir = _fake_docker(tmp_path)
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    assert _aegra(tmp_path, bin_dir, "down").returncode == 0
    assert _aegra(tmp_path, bin_dir, "up", "-f", "other.yaml").returncode == 1  # missing
    (tmp_path / "other.yaml").write_text("services: {}\n")
    assert _aegra(tmp_path, bin_dir, "up", "-f", "other.yaml", "--no-build").returncode == 0
    calls = [c for c in _calls(tmp_path) if c[-1] not in ("version", "{{.ServerVersion}}")]
    assert calls == [
        ["compose", "-f", str(tmp_path.resolve() / "docker-compose.yml"), "down"],
        ["compose", "-f", "other.yaml", "up", "-d"],
    ]
    assert not (tmp_path / "compose.yaml").exists()


def test_compose_template_is_the_repository_file_and_is_complete():
    text = compose.template()
    assert text == (REPO / "compose.yaml").read_text()
    doc = yaml.safe_load(text)
    services = doc["services"]
    assert set(services) == {"postgres", "redis", "app"}
    assert all(s["restart"] == "unless-stopped" for s in services.values())
    assert services["postgres"]["image"] == "pgvector/pgvector:pg16"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    app = services["app"]
    assert app["build"] == "." and app["command"][:2] == ["aegra", "serve"]
    assert app["environment"]["REDIS_BROKER_ENABLED"] == "true"
    assert {"DATABASE_URL", "REDIS_URL"} <= set(app["environment"])
    assert app["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                 "redis": {"condition": "service_healthy"}}
    assert "http://localhost:2026/health" in " ".join(app["healthcheck"]["test"])
    assert (app["healthcheck"]["interval"], app["healthcheck"]["retries"]) == ("30s", 3)
    assert "./:/app:ro" in app["volumes"]
    assert "postgres_data" in doc["volumes"]
