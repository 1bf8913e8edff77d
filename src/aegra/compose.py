"""``aegra up`` / ``aegra down``: the PostgreSQL + Redis + app stack via Docker Compose.

A thin driver around ``docker compose``: it finds (or writes) the compose file, makes sure
a Docker engine with the compose plugin is reachable, prints the command and runs it with
the terminal attached. Without Docker it says so in one line and points at ``aegra dev`` /
``aegra serve``, instead of surfacing a docker traceback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

CANDIDATES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
CHECK_TIMEOUT_S = 20.0  # `docker info` against a stuck daemon would otherwise hang forever


def _say(line: str) -> None:
    print(line, flush=True)


def _no_docker(command: str, why: str) -> int:
    print(
        f"aegra: `aegra {command}` needs Docker with the compose plugin, and no Docker engine "
        f"is reachable here ({why}). Use `aegra dev` (embedded PostgreSQL) or `aegra serve` "
        "with DATABASE_URL.",
        file=sys.stderr, flush=True,
    )
    return 1


def _quiet(argv: Sequence[str]) -> bool:
    """Run a probe; True when it exits 0 in time."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=CHECK_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def docker_problem() -> str | None:
    """Why ``docker compose`` cannot work here, or None when it can."""
    docker = shutil.which("docker")
    if docker is None:
        return "docker is not on PATH"
    if not _quiet([docker, "compose", "version"]):
        return "`docker compose version` failed: the compose plugin is missing"
    if not _quiet([docker, "info", "--format", "{{.ServerVersion}}"]):
        return "`docker info` failed: the daemon is not running or not reachable"
    return None


def find_file(explicit: str | None, cwd: Path | None = None) -> Path | None:
    cwd = cwd or Path.cwd()
    if explicit:
        return Path(explicit)
    for name in CANDIDATES:
        if (cwd / name).is_file():
            return cwd / name
    return None


def template() -> str:
    return resources.files("aegra").joinpath("templates", "compose.yaml").read_text()


def _run(argv: list[str]) -> int:
    _say("$ " + " ".join(argv))
    try:
        return subprocess.run(argv, check=False).returncode
    except KeyboardInterrupt:
        # compose got the same Ctrl-C (same process group) and stops on its own.
        return 130


def up(file: str | None, build: bool, services: Sequence[str]) -> int:
    """``docker compose -f FILE up -d [--build] [SERVICE...]``; the compose exit code."""
    problem = docker_problem()
    if problem is not None:
        return _no_docker("up", problem)
    path = find_file(file)
    if path is None:
        path = Path.cwd() / "compose.yaml"
        path.write_text(template())
        _say("wrote compose.yaml (PostgreSQL with pgvector, Redis, the app from ./Dockerfile)")
        if not (path.parent / "Dockerfile").is_file():
            _say("note: no ./Dockerfile here; the app service builds from it "
                 "(see aegra's Dockerfile for one that installs aegra)")
    elif not path.is_file():
        print(f"aegra: compose file {path} not found", file=sys.stderr, flush=True)
        return 1
    argv = ["docker", "compose", "-f", str(path), "up", "-d"]
    if build:
        argv.append("--build")
    argv += list(services)
    return _run(argv)


def down(file: str | None, volumes: bool) -> int:
    """``docker compose -f FILE down [--volumes]``; the compose exit code."""
    problem = docker_problem()
    if problem is not None:
        return _no_docker("down", problem)
    path = find_file(file)
    if path is None or not path.is_file():
        where = str(path) if path else "here (" + ", ".join(CANDIDATES) + ")"
        print(f"aegra: no compose file {where}: nothing to stop", file=sys.stderr, flush=True)
        return 1
    argv = ["docker", "compose", "-f", str(path), "down"]
    if volumes:
        argv.append("--volumes")
    return _run(argv)
