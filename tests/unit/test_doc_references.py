"""Docs and code cite only what is in the repository: the design notes are
docs/architecture.md (the design document they grew from is not shipped), and every
"docs/architecture.md, <section>" citation names a section that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def _texts() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    src = ROOT / "src" / "aegra"
    files += [p for p in sorted(src.rglob("*")) if p.suffix in (".py", ".toml", ".md")]
    return files


def test_no_citation_of_a_design_file_outside_the_repository():
    for path in _texts():
        text = path.read_text()
        assert "DESIGN" not in text and "../shared" not in text, path.relative_to(ROOT)


def test_architecture_citations_name_existing_sections():
    headings = {h.split(" (")[0] for h in re.findall(r"^## (.+)$", ARCHITECTURE.read_text(),
                                                     re.MULTILINE)}
    cited = 0
    for path in _texts():
        text = re.sub(r"\s*\n\s*(#\s*)?", " ", path.read_text())  # citations wrap lines
        for section in re.findall(r"docs/architecture\.md, ([A-Z][a-z ]+[a-z])", text):
            assert section in headings, (path.relative_to(ROOT), section)
            cited += 1
    assert cited >= 10


def test_systemd_guide_installs_what_exists():
    text = (ROOT / "docs" / "systemd.md").read_text()
    assert "pip install aegra-trio" not in text  # not published on PyPI
    assert "pip install /path/to/checkout" in text
