"""Generative UI: what a built component bundle is, and the rules for serving it.

A bundle is one entry of aegra.json's ``ui`` (a name, usually a graph id, -> a .tsx/.jsx
file whose default export maps component names to React components), built into browser
assets. Agent Chat UI's ``LoadExternalComponent`` asks ``POST /ui/{name}`` for an HTML
fragment, inserts it into a shadow root, and the ``<script>`` it names calls the
bundle's ``render(component, shadowRootId)`` once loaded. Pure rules only: the build
(``adapters/ui``) and the files live elsewhere.
"""

from __future__ import annotations

import html
import json
import mimetypes
import re
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import quote

import msgspec

from aegra.domain.errors import NotFound

# The host page provides these modules (``bootstrapUiContext`` in
# @langchain/langgraph-sdk/react-ui); bundles never carry their own copy.
HOST_MODULES = ("react", "react-dom", "@langchain/langgraph-sdk",
                "@langchain/langgraph-sdk/react-ui")
SHADOW_ROOT_PLACEHOLDER = "{{shadowRootId}}"  # filled in by LoadExternalComponent
_ASSET = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
# What a browser needs to run or apply an asset; ``mimetypes`` knows the rest.
_TYPES = {".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".map": "application/json"}


class UiBundle(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    assets: tuple[str, ...]  # file names relative to the bundle's folder, e.g. entrypoint.js


class UiAssets(Protocol):
    """The built bundles (read-only while serving)."""

    def bundles(self) -> Mapping[str, UiBundle]: ...

    async def read(self, name: str, path: str) -> bytes | None:
        """The asset's bytes, or None when there is no such file in the bundle."""
        ...


def global_name(name: str) -> str:
    """The global the bundle's IIFE assigns (``render`` is read from it)."""
    return "__LGUI_" + re.sub(r"[^A-Za-z0-9]", "_", name)


def shared_modules(extra: tuple[str, ...]) -> tuple[str, ...]:
    """Modules taken from the host page: React, the SDK, and ``ui_config.shared``."""
    return tuple(dict.fromkeys((*HOST_MODULES, *extra)))


def fragment(bundle: UiBundle, component: str, prefix: str = "") -> str:
    """The HTML ``LoadExternalComponent`` inserts, as the platform writes it: a tag per
    asset in build order, the script's ``onload`` rendering ``component`` into the shadow
    root whose id the client fills in."""
    base = f"{prefix}/ui/{quote(bundle.name, safe='')}/"
    # Single-quoted attribute: html.escape turns any ' in the name into &#x27;.
    render = (f"{global_name(bundle.name)}.render("
              f"{html.escape(json.dumps(component), quote=True)}, "
              f'"{SHADOW_ROOT_PLACEHOLDER}")')
    tags = []
    for asset in bundle.assets:
        url = html.escape(base + quote(asset), quote=True)
        if asset.endswith(".css"):
            tags.append(f'<link rel="stylesheet" href="{url}" />')
        elif asset.endswith(".js"):
            tags.append(f"<script src=\"{url}\" onload='{render}'></script>")
    return "\n".join(tags)


def asset_path(path: str) -> str:
    """A relative path inside a bundle folder; anything that could leave it (``..``,
    absolute, backslashes, odd characters) is not found, never read."""
    if not _ASSET.fullmatch(path) or any(p in (".", "..") for p in path.split("/")):
        raise NotFound(f"UI asset '{path}' not found")
    return path


def content_type(path: str) -> str:
    suffix = path[path.rfind("."):] if "." in path else ""
    found = _TYPES.get(suffix) or mimetypes.guess_type(path)[0]
    return found or "application/octet-stream"
