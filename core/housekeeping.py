"""Looking after past work: the bounds of a job's or sweep's tags and note, and how tags are kept.

Tags are short words (letters, digits, `.`, `_`, `:`, `-`), at most `MAX_TAGS` of them; stored as one
delimited string (`core.db.tables.TAG_DELIMITER`) so a tag filter is the same `LIKE` on PostgreSQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.db.tables import TAG_DELIMITER

MAX_TAGS = 16
MAX_TAG_LENGTH = 32
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,31}$"
MAX_NOTE_LENGTH = 4000


def tags_column(tags: Sequence[str]) -> str:
    """The stored form of `tags`: ",a,b," (each once, in the order given), or "" when there are none."""
    unique = list(dict.fromkeys(tags))
    return f"{TAG_DELIMITER}{TAG_DELIMITER.join(unique)}{TAG_DELIMITER}" if unique else ""


def tags_from_column(stored: str | None) -> list[str]:
    return [tag for tag in (stored or "").split(TAG_DELIMITER) if tag]


def tag_pattern(tag: str) -> str:
    """What a stored tags string containing `tag` contains (for a `contains(..., autoescape=True)`)."""
    return f"{TAG_DELIMITER}{tag}{TAG_DELIMITER}"
