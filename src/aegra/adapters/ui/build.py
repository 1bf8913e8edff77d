"""Build aegra.json's ``ui`` bundles with Node at startup (only when ``ui`` is configured).

The toolchain (esbuild and the Tailwind CSS plugin the platform's bundler also uses,
pinned in ``TOOLCHAIN``) is installed with npm once into ``ui.cache_dir``; ``build.mjs``
then bundles each component file into ``<build_dir>/public/<name>/``. A manifest per
bundle (``<build_dir>/manifests/<name>.json``) records the build key (toolchain, script,
entry file, shared modules) and the SHA-256 of every file esbuild read, so a restart
with nothing changed runs no Node at all. New output is written beside the old and
swapped in by rename, so an instance serving the old bundle never sees half a build.

Errors are ``UiBuildError``: one line for the operator (Node missing, install failed,
the component does not compile); the server does not start without its UI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from aegra.adapters.ui.assets import DirUiAssets
from aegra.config import UiCfg
from aegra.domain.ui import UiBundle, global_name, shared_modules
from aegra.logs import get_logger
from aegra.project import Project

log = get_logger("aegra.ui")

TOOLCHAIN = {"esbuild": "0.28.2", "esbuild-plugin-tailwindcss": "2.2.0"}
SCRIPT = Path(__file__).with_name("build.mjs")
NODE_HINT = ("install Node.js 18 or newer with npm (https://nodejs.org/) and put `node` and "
             "`npm` on PATH, or remove `ui` from the project file")

Runner = Callable[..., Awaitable["subprocess.CompletedProcess[bytes]"]]


class UiBuildError(Exception):
    """The UI could not be built; ``str()`` is the one line shown to the operator."""


@dataclass(frozen=True)
class Built:
    assets: DirUiAssets
    built: tuple[str, ...]  # bundles rebuilt by this call
    reused: tuple[str, ...]  # bundles whose inputs had not changed


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aegra" / "ui"


async def build(project: Project, cfg: UiCfg, *, search_path: str | None = None,
                run: Runner = trio.run_process) -> Built | None:
    """Build (or reuse) every bundle of ``project.ui``; None when there is none."""
    if not project.ui:
        return None  # never look for Node: a project without UI does not need it
    build_dir = Path(cfg.build_dir) if cfg.build_dir else project.root / ".aegra" / "ui"
    keys = await trio.to_thread.run_sync(lambda: {n: _key(project, n) for n in project.ui})
    stale = await trio.to_thread.run_sync(_stale, build_dir, keys)
    if stale:
        node, npm = _tools(search_path)
        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
        t0 = trio.current_time()
        with trio.move_on_after(cfg.build_timeout_s) as scope:
            toolchain = await _toolchain(cache_dir, npm, run)
            results = await _run_builder(node, toolchain, project, build_dir, stale, run)
        if scope.cancelled_caught:
            raise UiBuildError(f"ui: building {', '.join(stale)} took longer than "
                               f"ui.build_timeout_s = {cfg.build_timeout_s}s")
        await trio.to_thread.run_sync(_install_results, build_dir, keys, results)
        log.info("ui.built", bundles=stale, ms=round((trio.current_time() - t0) * 1000, 1))
    reused = tuple(name for name in project.ui if name not in stale)
    if reused:
        log.info("ui.reused", bundles=list(reused), build_dir=str(build_dir))
    bundles = await trio.to_thread.run_sync(_read_bundles, build_dir, list(project.ui))
    folders = {name: build_dir / "public" / name for name in project.ui}
    return Built(DirUiAssets(folders, bundles), built=tuple(stale), reused=reused)


def _tools(search_path: str | None) -> tuple[str, str]:
    node = shutil.which("node", path=search_path)
    npm = shutil.which("npm", path=search_path)
    if node is None or npm is None:
        missing = [n for n, p in (("node", node), ("npm", npm)) if p is None]
        raise UiBuildError(f"ui is configured but {' and '.join(missing)} "
                           f"{'was' if len(missing) == 1 else 'were'} not found on PATH: "
                           f"{NODE_HINT}")
    return node, npm


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(project: Project, name: str) -> str:
    spec = {"toolchain": TOOLCHAIN, "script": _sha256(SCRIPT.read_bytes()), "name": name,
            "entry": str(project.ui[name]), "root": str(project.root),
            "shared": shared_modules(project.ui_shared)}
    return _sha256(json.dumps(spec, sort_keys=True).encode())


def _manifest_path(build_dir: Path, name: str) -> Path:
    return build_dir / "manifests" / f"{name}.json"


def _stale(build_dir: Path, keys: Mapping[str, str]) -> list[str]:
    """The bundles whose key, inputs or outputs differ from their last build."""
    return [name for name, key in keys.items() if not _fresh(build_dir, name, key)]


def _fresh(build_dir: Path, name: str, key: str) -> bool:
    try:
        manifest = json.loads(_manifest_path(build_dir, name).read_text())
        if manifest["key"] != key:
            return False
        folder = build_dir / "public" / name
        if not all((folder / asset).is_file() for asset in manifest["assets"]):
            return False
        return all(_sha256(Path(p).read_bytes()) == digest
                   for p, digest in manifest["inputs"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


async def _toolchain(cache_dir: Path, npm: str, run: Runner) -> Path:
    """The folder holding esbuild & co. and build.mjs, installed on first use."""
    tag = _sha256(json.dumps(TOOLCHAIN, sort_keys=True).encode())[:12]
    folder = cache_dir / f"toolchain-{tag}"
    if not await trio.Path(folder / ".complete").is_file():
        staging = cache_dir / f".install-{uuid.uuid4().hex[:8]}"
        await trio.to_thread.run_sync(_write_package, staging)
        log.info("ui.toolchain_installing", folder=str(folder), packages=TOOLCHAIN)
        done = await run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                         cwd=str(staging), capture_stdout=True, capture_stderr=True,
                         check=False)
        if done.returncode != 0:
            await trio.to_thread.run_sync(_rmtree, staging)
            raise UiBuildError(f"ui: `npm install {' '.join(TOOLCHAIN)}` failed in "
                               f"{staging}: {_tail(done.stderr)}")
        await trio.to_thread.run_sync(_publish, staging, folder)
    # The script sits beside node_modules so its imports resolve there.
    await trio.to_thread.run_sync(_copy_if_changed, SCRIPT, folder / SCRIPT.name)
    return folder


def _write_package(staging: Path) -> None:
    staging.mkdir(parents=True)  # and cache_dir, the first time
    (staging / "package.json").write_text(json.dumps(
        {"name": "aegra-ui-toolchain", "private": True, "type": "module",
         "dependencies": TOOLCHAIN}, indent=2))


def _publish(staging: Path, folder: Path) -> None:
    (staging / ".complete").write_text("")
    try:
        staging.rename(folder)
    except OSError:
        # Another instance installed it first (or a broken copy is in the way).
        if not (folder / ".complete").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)
            return
        shutil.rmtree(staging, ignore_errors=True)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _copy_if_changed(source: Path, target: Path) -> None:
    data = source.read_bytes()
    if target.is_file() and target.read_bytes() == data:
        return
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    staging.write_bytes(data)
    os.replace(staging, target)


async def _run_builder(node: str, toolchain: Path, project: Project, build_dir: Path,
                       names: Sequence[str], run: Runner) -> list[dict[str, Any]]:
    staging = build_dir / "staging" / uuid.uuid4().hex[:8]
    jobs = [{"name": name, "entry": str(project.ui[name]), "outdir": str(staging / name),
             "globalName": global_name(name)} for name in names]
    spec = {"cwd": str(project.root), "shared": list(shared_modules(project.ui_shared)),
            "jobs": jobs}
    done = await run([node, str(toolchain / SCRIPT.name)], stdin=json.dumps(spec).encode(),
                     cwd=str(project.root), capture_stdout=True, capture_stderr=True,
                     check=False)
    if done.returncode != 0:
        await trio.to_thread.run_sync(_rmtree, staging)
        # build.mjs writes one "ui.<name>: <esbuild errors>" line per bundle; tools it
        # loads may print more (stack traces), shown only when there is nothing else.
        text = (done.stderr or b"").decode(errors="replace")
        ours = [line for line in text.splitlines() if line.startswith("ui.")]
        reason = "; ".join(ours) if ours else _tail(done.stderr)
        raise UiBuildError(f"ui: building {', '.join(names)} failed: {reason}")
    results: list[dict[str, Any]] = json.loads(done.stdout)["results"]
    for result in results:
        result["outdir"] = str(staging / result["name"])
    return results


def _install_results(build_dir: Path, keys: Mapping[str, str],
                     results: list[dict[str, Any]]) -> None:
    """Swap each new bundle in by rename and write its manifest last (a crash between
    the two leaves a stale manifest: the next start rebuilds)."""
    (build_dir / "manifests").mkdir(parents=True, exist_ok=True)
    (build_dir / "public").mkdir(parents=True, exist_ok=True)
    for result in results:
        name = result["name"]
        folder = build_dir / "public" / name
        old = Path(result["outdir"]).parent / ".old" / name  # names never start with "."
        try:
            if folder.exists():
                old.parent.mkdir(exist_ok=True)
                folder.rename(old)
            Path(result["outdir"]).rename(folder)
        except OSError:
            # Another instance sharing build_dir swapped in its build of the same inputs
            # between our two renames; theirs serves as well as ours.
            if not folder.is_dir():
                raise
        shutil.rmtree(old, ignore_errors=True)
        inputs = {p: _sha256(Path(p).read_bytes()) for p in result["inputs"]}
        manifest = {"key": keys[name], "assets": result["assets"], "inputs": inputs}
        target = _manifest_path(build_dir, name)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        staging.write_text(json.dumps(manifest, indent=1))
        os.replace(staging, target)
    for result in results:  # this build's own staging folder only: others may be building
        shutil.rmtree(Path(result["outdir"]).parent, ignore_errors=True)


def _read_bundles(build_dir: Path, names: Sequence[str]) -> dict[str, UiBundle]:
    out = {}
    for name in names:
        manifest = json.loads(_manifest_path(build_dir, name).read_text())
        out[name] = UiBundle(name=name, assets=tuple(manifest["assets"]))
    return out


def _tail(stderr: bytes | None, limit: int = 2000) -> str:
    text = (stderr or b"").decode(errors="replace").strip()
    return text[-limit:] if text else "(no output)"
