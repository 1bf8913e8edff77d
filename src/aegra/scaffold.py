"""``aegra init``: a new project with a sample graph that runs without an API key.

The files come from ``aegra/templates/project`` (package data, so they ship in the wheel);
the graph is a ``.py.tmpl`` data file, never imported by aegra itself. ``.env.example`` is
generated from ``config.ENV_NAMES`` so it cannot drift from the settings. Existing files
are never overwritten: running ``init`` twice is safe.

The project also gets what ``aegra up`` needs: ``compose.yaml`` and a ``Dockerfile`` that
builds FROM the aegra server image of this version (``base_image()``), which is built from
an aegra checkout (aegra is not on a public registry; ``aegra.compose`` builds it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import msgspec

from aegra import __version__
from aegra.config import ENV_NAMES, SECRET_KEYS, Config

# No "env" key: aegra.json would then require the file to exist, and `aegra dev` and
# `aegra serve` read ./.env anyway when there is one.
AEGRA_JSON = {"graphs": {"agent": "./graphs/agent.py:graph"}, "dependencies": ["."]}

_EXAMPLES = {  # values shown for settings whose default is "unset"
    "DATABASE_URL": "postgresql://postgres:password@localhost:5432/aegra",
    "AEGRA_CONFIG": "aegra.json",
}


def _template(name: str) -> str:
    return resources.files("aegra").joinpath("templates", "project", name).read_text()


def base_image(version: str = __version__) -> str:
    """The aegra server image a project builds FROM: ``aegra:<version>``.

    A local version such as ``0.0.0+local`` has characters a Docker tag may not hold."""
    return "aegra:" + re.sub(r"[^A-Za-z0-9_.-]", "-", version)


def _with_image(text: str) -> str:
    return text.replace("@AEGRA_IMAGE@", base_image())


def compose_yaml() -> str:
    """The project's compose file: PostgreSQL, Redis and the app built from ./Dockerfile."""
    return _with_image(resources.files("aegra").joinpath("templates", "compose.yaml").read_text())


def dockerfile() -> str:
    return _with_image(_template("Dockerfile.tmpl"))


def dockerignore() -> str:
    return _template("dockerignore.tmpl")


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def env_example() -> str:
    """Every documented environment variable, commented out, with its default."""
    defaults = msgspec.to_builtins(Config())
    lines = [
        "# Copy to .env and uncomment what you change; variables already set in the",
        "# environment win over this file. With neither DATABASE_URL nor POSTGRES_HOST set,",
        "# `aegra dev` starts an embedded PostgreSQL in .aegra/pgdata.",
        "# Any other setting: AEGRA__<SECTION>__<KEY>=value (see supervisor.toml).",
    ]
    section = None
    for name, (sec, key) in ENV_NAMES.items():
        if sec != section:
            section = sec
            lines += ["", f"# [{sec}]"]
        if (sec, key) in SECRET_KEYS:
            lines.append("# (secret: set it here or in the environment, never in supervisor.toml)")
        lines.append(f"# {name}={_EXAMPLES.get(name, _show(defaults[sec][key]))}")
    lines += ["", "# Your graphs' own keys, e.g.:", "# OPENAI_API_KEY=sk-...", ""]
    return "\n".join(lines)


def _files() -> list[tuple[str, str]]:
    return [
        ("aegra.json", json.dumps(AEGRA_JSON, indent=2) + "\n"),
        ("graphs/__init__.py", _template("graphs_init.py.tmpl")),
        ("graphs/agent.py", _template("agent.py.tmpl")),
        (".env.example", env_example()),
        (".gitignore", _template("gitignore.tmpl")),
        ("Dockerfile", dockerfile()),
        (".dockerignore", dockerignore()),
        ("compose.yaml", compose_yaml()),
    ]


def write_new(target: Path, text: str) -> bool:
    """Write ``target`` unless it exists; True when written."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    # "x" mode: a file that appeared since the check is still never overwritten.
    try:
        with target.open("x") as fh:
            fh.write(text)
    except FileExistsError:
        return False
    return True


def create(path: Path) -> Iterator[str]:
    """Write the project files under ``path``; yield one progress line per file."""
    path.mkdir(parents=True, exist_ok=True)
    for rel, text in _files():
        yield f"created {rel}" if write_new(path / rel, text) else f"skipped {rel} (exists)"
    where = "" if path.resolve() == Path.cwd().resolve() else f"cd {path} && "
    yield f"next: {where}aegra dev   (then open http://127.0.0.1:2026/docs)"
