"""``aegra init``: a new project with a sample graph that runs without an API key.

The files come from ``aegra/templates/project`` (package data, so they ship in the wheel);
the graph is a ``.py.tmpl`` data file, never imported by aegra itself. ``.env.example`` is
generated from ``config.ENV_NAMES`` so it cannot drift from the settings. Existing files
are never overwritten: running ``init`` twice is safe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import msgspec

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
    ]


def create(path: Path) -> Iterator[str]:
    """Write the project files under ``path``; yield one progress line per file."""
    path.mkdir(parents=True, exist_ok=True)
    for rel, text in _files():
        target = path / rel
        if target.exists():
            yield f"skipped {rel} (exists)"
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # "x" mode: a file that appeared since the check is still never overwritten.
        try:
            with target.open("x") as fh:
                fh.write(text)
        except FileExistsError:
            yield f"skipped {rel} (exists)"
            continue
        yield f"created {rel}"
    where = "" if path.resolve() == Path.cwd().resolve() else f"cd {path} && "
    yield f"next: {where}aegra dev   (then open http://127.0.0.1:2026/docs)"
