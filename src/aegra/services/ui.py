"""Generative UI: the HTML fragment that loads a bundle's component, and its assets.

As on the platform, ``POST /ui/{name}`` is behind authentication (the caller must be
authenticated; no ``@auth.on`` handler is asked, there is no resource to filter) and the
asset ``GET``s are open: a browser loads them from ``<script src>``/``<link href>``,
which carry no Authorization header. A bundle holds only compiled component code, never
data.
"""

from __future__ import annotations

from aegra.domain import ui as rules
from aegra.domain.auth import Caller
from aegra.domain.errors import NotFound
from aegra.domain.ui import UiAssets


class UiService:
    def __init__(self, assets: UiAssets) -> None:
        self.assets = assets

    def fragment(self, caller: Caller, name: str, component: str, prefix: str = "") -> str:
        bundle = self.assets.bundles().get(name)
        if bundle is None:
            raise NotFound(f"UI not found for graph '{name}'")
        return rules.fragment(bundle, component, prefix)

    async def asset(self, name: str, path: str) -> tuple[bytes, str]:
        """(bytes, content type) of one file of a bundle."""
        if name not in self.assets.bundles():
            raise NotFound(f"UI not found for graph '{name}'")
        data = await self.assets.read(name, rules.asset_path(path))
        if data is None:
            raise NotFound(f"UI asset '{path}' not found")
        return data, rules.content_type(path)
