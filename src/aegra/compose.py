"""``aegra up`` / ``aegra down``: the PostgreSQL + Redis + app stack via Docker Compose.

A thin driver around ``docker compose``: it finds (or writes) the compose file, makes sure
a Docker engine with the compose plugin is reachable, prints the command and runs it with
the terminal attached. Without Docker it says so in one line and points at ``aegra dev`` /
``aegra serve``, instead of surfacing a docker traceback.

A project made by ``aegra init`` builds its app image FROM the aegra server image
(``AEGRA_IMAGE``, by default ``aegra:<version>``), which no public registry has. When aegra
runs from a checkout, ``up`` builds that image from it first (Docker's layer cache makes
this quick when nothing changed); otherwise a missing image is one line naming the command.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import aegra
from aegra import scaffold
from aegra.project import parse_dotenv

CANDIDATES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
CHECK_TIMEOUT_S = 20.0  # `docker info` against a stuck daemon would otherwise hang forever
# The Dockerfile `aegra init` writes: `ARG AEGRA_IMAGE=<default>` then `FROM ${AEGRA_IMAGE}`.
_FROM_BASE = re.compile(r"^\s*FROM\s+\$\{?AEGRA_IMAGE\}?\s*$", re.MULTILINE | re.IGNORECASE)
_ARG_BASE = re.compile(r"^\s*ARG\s+AEGRA_IMAGE=(\S+)\s*$", re.MULTILINE | re.IGNORECASE)


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
    return scaffold.compose_yaml()


def checkout(package_dir: Path) -> Path | None:
    """The aegra source tree the package at ``package_dir`` runs from, or None (a wheel)."""
    root = package_dir.resolve().parent.parent  # <checkout>/src/aegra
    if all((root / name).exists() for name in ("Dockerfile", "pyproject.toml", "migrations")):
        return root
    return None


def wanted_base(folder: Path) -> str | None:
    """The image ``folder/Dockerfile`` builds FROM when it is the one ``aegra init`` writes.

    Resolved as compose resolves ``${AEGRA_IMAGE}``: the environment, then ``.env``, then
    the Dockerfile's default. None for any other Dockerfile (or none at all)."""
    try:
        text = (folder / "Dockerfile").read_text()
    except OSError:
        return None
    if not _FROM_BASE.search(text):
        return None
    try:
        dotenv = parse_dotenv((folder / ".env").read_text())
    except OSError:
        dotenv = {}
    default = _ARG_BASE.search(text)
    return (os.environ.get("AEGRA_IMAGE") or dotenv.get("AEGRA_IMAGE")
            or (default.group(1) if default else None))


def _base_image(folder: Path, build: bool) -> int:
    """Make sure the aegra image the app builds FROM exists; 0 when it does."""
    image = wanted_base(folder)
    if image is None or "/" in image:  # a registry image: docker pulls it while building
        return 0
    source = checkout(Path(aegra.__file__).parent)
    # Only this version's tag is built from this checkout: another tag is someone's choice.
    rebuild = None if source is None or image != scaffold.base_image() else (
        ["docker", "build", "-t", image, str(source)])
    if rebuild and build:
        return _run(rebuild)
    if _quiet(["docker", "image", "inspect", image]):
        return 0
    if rebuild:
        return _run(rebuild)
    print(f"aegra: the app image builds FROM {image}, which Docker does not have: build it "
          f"once with `docker build -t {image} <your aegra checkout>`, or set AEGRA_IMAGE to "
          "an image in your registry",
          file=sys.stderr, flush=True)
    return 1


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
        # The compose file builds `.`: a project from before `aegra init` wrote these.
        if scaffold.write_new(path.parent / "Dockerfile", scaffold.dockerfile()):
            _say(f"wrote Dockerfile (this folder on top of {scaffold.base_image()})")
        if scaffold.write_new(path.parent / ".dockerignore", scaffold.dockerignore()):
            _say("wrote .dockerignore")
    elif not path.is_file():
        print(f"aegra: compose file {path} not found", file=sys.stderr, flush=True)
        return 1
    code = _base_image(path.parent, build)
    if code != 0:
        return code
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
