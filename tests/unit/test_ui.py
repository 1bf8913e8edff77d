"""Generative UI rules (domain.ui) and the build's guards: a project without ``ui`` never
looks for Node, and missing Node is one line naming what to install."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aegra import project as projmod
from aegra.adapters.ui import build as ui_build
from aegra.config import UiCfg
from aegra.domain import ui
from aegra.domain.errors import NotFound


async def _no_process(*args: object, **kw: object) -> subprocess.CompletedProcess[bytes]:
    raise AssertionError(f"a process was started: {args}")


def _project(tmp_path: Path, **extra: object) -> projmod.Project:
    (tmp_path / "aegra.json").write_text(json.dumps({"graphs": {}, **extra}))
    return projmod.load(tmp_path / "aegra.json")


async def test_a_project_without_ui_never_runs_node(tmp_path: Path) -> None:
    project = _project(tmp_path)
    cfg = UiCfg(cache_dir=str(tmp_path / "cache"), build_dir=str(tmp_path / "build"))
    # No PATH at all: looking for node would fail, starting a process would raise.
    assert await ui_build.build(project, cfg, search_path="", run=_no_process) is None
    assert not (tmp_path / "cache").exists() and not (tmp_path / "build").exists()


async def test_missing_node_is_one_line_naming_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "card.tsx").write_text("export default {};\n")
    project = _project(tmp_path, ui={"agent": "./card.tsx"})
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    with pytest.raises(ui_build.UiBuildError) as caught:
        await ui_build.build(project, UiCfg(cache_dir=str(tmp_path / "cache")),
                             search_path=str(empty), run=_no_process)
    line = str(caught.value)
    assert "\n" not in line
    assert "node and npm were not found on PATH" in line
    assert "Node.js 18 or newer" in line and "https://nodejs.org/" in line


def test_fragment_is_the_platforms_tags_in_build_order() -> None:
    bundle = ui.UiBundle(name="my-agent", assets=("entrypoint.js", "entrypoint.css"))
    assert ui.fragment(bundle, "card").splitlines() == [
        '<script src="/ui/my-agent/entrypoint.js" onload=\'__LGUI_my_agent.render('
        '&quot;card&quot;, "{{shadowRootId}}")\'></script>',
        '<link rel="stylesheet" href="/ui/my-agent/entrypoint.css" />',
    ]
    # A component name cannot close the attribute or the tag.
    odd = ui.fragment(ui.UiBundle(name="a", assets=("entrypoint.js",)), "it's\"<>")
    assert "render(&quot;it&#x27;s\\&quot;&lt;&gt;&quot;, " in odd
    prefixed = ui.fragment(ui.UiBundle(name="a", assets=("entrypoint.js",)), "c", "/lg")
    assert prefixed.startswith('<script src="/lg/ui/a/entrypoint.js"')


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "a//b", ".", "./a",
                                  "a\\..\\b", "a\x00b", "", "%2e%2e/x"])
def test_asset_paths_that_could_leave_the_bundle_are_not_found(path: str) -> None:
    with pytest.raises(NotFound):
        ui.asset_path(path)


def test_asset_paths_and_types() -> None:
    assert ui.asset_path("entrypoint.js") == "entrypoint.js"
    assert ui.asset_path("chunks/a-1.css") == "chunks/a-1.css"
    assert ui.content_type("entrypoint.js") == "text/javascript; charset=utf-8"
    assert ui.content_type("entrypoint.css") == "text/css; charset=utf-8"
    assert ui.content_type("logo.svg") == "image/svg+xml"
    assert ui.content_type("blob") == "application/octet-stream"


def test_shared_modules_always_include_the_host_page_ones() -> None:
    assert ui.shared_modules(("@acme/ui", "react")) == (
        "react", "react-dom", "@langchain/langgraph-sdk", "@langchain/langgraph-sdk/react-ui",
        "@acme/ui")
    assert ui.global_name("my-agent.v2") == "__LGUI_my_agent_v2"
