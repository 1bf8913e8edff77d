"""The shipped supervisor.toml: loads to the defaults and documents every setting."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import msgspec

from aegra import config

FILE = Path(__file__).resolve().parents[2] / "supervisor.toml"
KEY_LINE = re.compile(r"^# ([a-z_]+) = (.+)$")
# Settings that cannot be written as a TOML default: secrets (environment only) and "unset".
PLACEHOLDERS = {"postgres.url", "postgres.password", "redis.url", "server.graphs_file",
                "auth.admin_token", "webhooks.secret"}


def _documented() -> dict[str, str]:
    """"section.key" -> the commented-out value text, per [section] of the file."""
    out: dict[str, str] = {}
    section = None
    for line in FILE.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        match = KEY_LINE.match(line)
        if match and section:
            out[f"{section}.{match.group(1)}"] = match.group(2)
    return out


def test_loads_cleanly_to_the_defaults():
    loaded = config.load(str(FILE), {})
    assert loaded.config == config.Config()
    assert loaded.sources == {}


def test_every_setting_is_documented_with_its_default():
    defaults = msgspec.to_builtins(config.Config())
    expected = {f"{section}.{key}" for section, values in defaults.items() for key in values}
    documented = _documented()
    assert set(documented) == expected
    raw = tomllib.loads(FILE.read_text())
    assert set(raw) == set(defaults)  # every section header present
    assert all(raw[section] == {} for section in raw)  # ...and every key commented out
    uncommented: dict[str, dict[str, object]] = {}
    for name, value in documented.items():
        if name in PLACEHOLDERS:
            assert value.startswith("<"), name
            continue
        section, key = name.split(".")
        parsed = tomllib.loads(f"{key} = {value}")[key]
        uncommented.setdefault(section, {})[key] = parsed
        default = defaults[section][key]
        assert parsed == (list(default) if isinstance(default, tuple) else default), name
    # Uncommenting every key changes nothing either.
    assert msgspec.convert(uncommented, config.Config, strict=False) == config.Config()


def test_names_each_environment_variable():
    text = FILE.read_text()
    for name, (section, key) in config.ENV_NAMES.items():
        assert re.search(rf"Env: {name}\b", text), name
        block = text.split(f"[{section}]", 1)[1]
        assert f"# {key} = " in block.split("\n[", 1)[0], (name, section, key)


def test_documents_only_environment_variables_that_are_read():
    defaults = msgspec.to_builtins(config.Config())
    for name in re.findall(r"Env: ([A-Z][A-Z0-9_]*)", FILE.read_text()):
        if name in config.ENV_NAMES:
            continue
        generic = re.fullmatch(r"AEGRA__([A-Z0-9_]+?)__([A-Z0-9_]+)", name)
        assert generic is not None, f"{name} is documented but not read"
        section, key = generic[1].lower(), generic[2].lower()
        assert key in defaults[section], name
        default = defaults[section][key]
        value = (default or "x") if default is None or isinstance(default, str) else (
            json.dumps(default))
        loaded = config.load(None, {name: value})
        assert loaded.sources.get(f"{section}.{key}") == f"env {name}", name
