"""`aegra up` / `aegra down`: the exact docker commands, and one clear line without Docker.

In a project made by `aegra init`, `up` first builds the aegra server image the project's
Dockerfile builds FROM, from this checkout (the tests run from one).

A fake ``docker`` (a shell script that records its arguments) stands in for the engine;
the commands run as real ``python -m aegra`` processes with PATH pointing at it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from aegra import compose, scaffold

REPO = Path(__file__).resolve().parents[2]
FAKE_DOCKER = """#!/bin/sh
# Record one invocation per line, arguments separated by tabs.
(IFS='\t'; echo "$*") >> "$DOCKER_LOG"
case "$1" in
  info) exit "${FAIL_INFO:-0}" ;;
  image) exit "${FAIL_INSPECT:-0}" ;;
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
BASE = scaffold.base_image()
BUILD_BASE = ["build", "-t", BASE, str(REPO)]
INSPECT = ["image", "inspect", BASE]


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
    assert f"wrote Dockerfile (this folder on top of {BASE})" in first.stdout
    assert f"$ docker compose -f {file} up -d" in first.stdout
    assert (cwd / "compose.yaml").read_text() == compose.template()
    assert (cwd / "Dockerfile").read_text() == scaffold.dockerfile()  # what `build: .` needs
    assert (cwd / ".dockerignore").read_text() == scaffold.dockerignore()

    second = _aegra(cwd, bin_dir, "up", "postgres", "redis")
    assert second.returncode == 0, second.stderr
    assert "wrote compose.yaml" not in second.stdout  # found, not rewritten

    third = _aegra(cwd, bin_dir, "down", "--volumes")
    assert third.returncode == 0, third.stderr

    assert _calls(cwd) == [
        # --no-build: the server image is there (inspect answers 0), so nothing is built
        *PROBES, INSPECT, ["compose", "-f", file, "up", "-d"],
        *PROBES, BUILD_BASE, ["compose", "-f", file, "up", "-d", "--build", "postgres", "redis"],
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


def test_init_project_up_builds_the_server_image_then_the_stack(tmp_path):
    bin_dir = _fake_docker(tmp_path)
    init = _aegra(tmp_path, bin_dir, "init", "proj")
    assert init.returncode == 0, init.stderr
    proj = tmp_path.resolve() / "proj"
    up = _aegra(proj, bin_dir, "up")
    assert up.returncode == 0, up.stderr
    assert "wrote" not in up.stdout  # init wrote compose.yaml, Dockerfile, .dockerignore
    assert f"$ docker build -t {BASE} {REPO}" in up.stdout
    assert _calls(proj) == [
        *PROBES, BUILD_BASE, ["compose", "-f", str(proj / "compose.yaml"), "up", "-d", "--build"]]
    # --no-build and the image missing: it is built all the same, or compose could not be.
    (proj / "docker.log").unlink()
    assert _aegra(proj, bin_dir, "up", "--no-build", FAIL_INSPECT="1").returncode == 0
    assert _calls(proj)[2:] == [INSPECT, BUILD_BASE,
                                ["compose", "-f", str(proj / "compose.yaml"), "up", "-d"]]


def test_other_server_images_are_not_built_from_this_checkout(tmp_path):
    bin_dir = _fake_docker(tmp_path)
    assert _aegra(tmp_path, bin_dir, "init", "proj").returncode == 0
    proj = tmp_path / "proj"
    (proj / ".env").write_text("AEGRA_IMAGE=aegra:9.9\n")  # read as compose reads it
    missing = _aegra(proj, bin_dir, "up", FAIL_INSPECT="1")
    assert missing.returncode == 1
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "FROM aegra:9.9" in lines[0]
    assert "`docker build -t aegra:9.9 <your aegra checkout>`" in lines[0]
    assert _calls(proj) == [*PROBES, ["image", "inspect", "aegra:9.9"]]  # no compose up

    (proj / "docker.log").unlink()
    registry = _aegra(proj, bin_dir, "up", AEGRA_IMAGE="registry.example.com/aegra:1")
    assert registry.returncode == 0, registry.stderr  # the environment wins over .env
    assert _calls(proj) == [*PROBES, ["compose", "-f", str(proj.resolve() / "compose.yaml"),
                                      "up", "-d", "--build"]]  # docker pulls it itself


def test_checkout_is_found_only_in_a_source_tree(tmp_path):
    assert compose.checkout(REPO / "src" / "aegra") == REPO
    wheel = tmp_path / "lib" / "python3.11" / "site-packages" / "aegra"
    wheel.mkdir(parents=True)
    assert compose.checkout(wheel) is None
    assert compose.wanted_base(REPO) is None  # the repository's Dockerfile is the base itself


def test_compose_template_matches_the_repository_file_but_for_the_app_image():
    template = yaml.safe_load(compose.template())
    repo = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert template["services"]["postgres"] == repo["services"]["postgres"]
    assert template["services"]["redis"] == repo["services"]["redis"]
    assert template["volumes"] == repo["volumes"]
    app, repo_app = template["services"]["app"], repo["services"]["app"]
    own = {"build", "image", "volumes"}
    assert {k: v for k, v in app.items() if k not in own} == {
        k: v for k, v in repo_app.items() if k not in own}
    # The project's code is in its image (the same image runs in Kubernetes), not mounted.
    assert "volumes" not in app and app["build"]["context"] == "."
    assert repo_app["build"] == "." and repo_app["image"] == BASE
