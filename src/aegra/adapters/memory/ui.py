"""The ``UiAssets`` port over a dict: bundles whose files are held in memory."""

from __future__ import annotations

from collections.abc import Mapping

from aegra.domain.ui import UiBundle


class MemoryUiAssets:
    def __init__(self, files: Mapping[str, Mapping[str, bytes]]) -> None:
        """``files``: bundle name -> {asset path: bytes}."""
        self.files = {name: dict(assets) for name, assets in files.items()}

    def bundles(self) -> Mapping[str, UiBundle]:
        return {name: UiBundle(name=name, assets=tuple(assets))
                for name, assets in self.files.items()}

    async def read(self, name: str, path: str) -> bytes | None:
        return self.files.get(name, {}).get(path)
