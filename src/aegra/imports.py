"""Load an object named in ``aegra.json``: ``./path/file.py:attr`` or ``package.module:attr``.

Files are loaded under a private module name derived from their path and registered in
``sys.modules`` first, because libraries resolve annotations and pickles through it
(pydantic/FastAPI forward references break otherwise). Relative paths are relative to
the project file's folder, not the working directory.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType


class TargetError(Exception):
    """The target could not be imported, or has no such attribute."""


def is_file_target(target: str) -> bool:
    return target.endswith(".py") or "/" in target or target.startswith(".")


def split(spec: str) -> tuple[str, str]:
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise TargetError("expected './path/file.py:attr' or 'package.module:attr'")
    return target, attr


def load(spec: str, root: Path) -> object:
    """Import ``spec`` and return its attribute; errors become one-line ``TargetError``s."""
    target, attr = split(spec)
    try:
        module = _load_file(target, root) if is_file_target(target) else (
            importlib.import_module(target))
    except TargetError:
        raise
    except Exception as exc:  # noqa: BLE001  any import-time error is the user's to see
        raise TargetError(f"cannot import {target}: {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TargetError(f"{target} has no attribute {attr!r}") from None


def _load_file(target: str, root: Path) -> ModuleType:
    path = (root / target).resolve()
    if not path.is_file():
        raise TargetError(f"file {path} not found")
    name = "aegra_user_" + re.sub(r"\W", "_", str(path.with_suffix("")))
    try:
        return exec_file(path, name)
    except ImportError as exc:
        raise TargetError(str(exc)) from None


def exec_file(path: Path | str, name: str) -> ModuleType:
    """Import a file as module ``name`` (once): the one loader for user files."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: dataclasses and get_type_hints look the module up.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
