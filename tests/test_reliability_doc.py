"""RELIABILITY.md names a test for every guarantee: each one it names must exist, or the promise is hollow."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `tests/x/test_y.py::test_name` or, continuing the last file named, `::test_name`.
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?::(test_\w+)`")


def named_tests() -> list[tuple[str, str]]:
    references = []
    current_file = None
    for match in REFERENCE.finditer((ROOT / "RELIABILITY.md").read_text()):
        current_file = match.group(1) or current_file
        assert current_file is not None, f"{match.group(0)} names no file"
        references.append((current_file, match.group(2)))
    return references


def test_every_test_reliability_md_names_exists() -> None:
    references = named_tests()
    assert len(references) > 30
    missing = [
        f"{path}::{name}"
        for path, name in references
        if not (ROOT / path).is_file()
        or not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(), re.MULTILINE)
    ]
    assert not missing
