"""The ``UiAssets`` port over the build directory: ``<build_dir>/public/<name>/``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import trio

from aegra.domain.ui import UiBundle


class DirUiAssets:
    def __init__(self, folders: Mapping[str, Path], bundles: Mapping[str, UiBundle]) -> None:
        self.folders = {name: folder.resolve() for name, folder in folders.items()}
        self._bundles = dict(bundles)

    def bundles(self) -> Mapping[str, UiBundle]:
        return self._bundles

    async def read(self, name: str, path: str) -> bytes | None:
        folder = self.folders.get(name)
        if folder is None:
            return None
        target = trio.Path(folder / path)
        # The path was checked (domain.ui.asset_path); resolving again guards symlinks.
        resolved = await target.resolve()
        if not Path(resolved).is_relative_to(folder) or not await resolved.is_file():
            return None
        return await resolved.read_bytes()
