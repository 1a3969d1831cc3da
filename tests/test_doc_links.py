"""The project's Markdown documents point only at what the repository has: every relative link (and image)
names an existing file, every `#anchor` an existing heading, and every `*.md` a document mentions exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "RELIABILITY.md", *(ROOT / "docs").glob("**/*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
MARKDOWN_FILE_NAME = re.compile(r"(?<![\w/.:-])((?:[\w-]+/)*[\w-]+\.md)\b")
EXTERNAL = ("http://", "https://", "mailto:")


def anchors(document: Path) -> set[str]:
    """GitHub's anchors for a document's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", document.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def prose(document: Path) -> str:
    """The document without its code blocks (shell sessions there may name files made on the way)."""
    return re.sub(r"^```.*?^```", "", document.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file_and_heading(document: Path) -> None:
    broken = []
    for target in LINK.findall(prose(document)):
        if target.startswith(EXTERNAL):
            continue
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_markdown_file_a_document_names_exists(document: Path) -> None:
    missing = [
        name
        for name in MARKDOWN_FILE_NAME.findall(prose(document))
        if not (document.parent / name).exists() and not (ROOT / name).exists()
    ]
    assert missing == []
