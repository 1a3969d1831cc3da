"""The README's job-spec reference is what the schema gives: a field added, bounded or described in
`core.spec` without regenerating the table fails here, and the regeneration fixes it."""

from __future__ import annotations

from pathlib import Path

from core.spec import JobSpec
from core.spec_reference import README, main, spec_reference, with_reference


def test_the_readme_spec_reference_is_current() -> None:
    readme = README.read_text(encoding="utf-8")
    assert spec_reference() in readme, (
        "README.md's job-spec reference is stale: python -m core.spec_reference"
    )


def test_the_reference_gives_every_field_its_type_default_and_bounds() -> None:
    table = spec_reference()
    for name in JobSpec.model_fields:
        assert f"| `{name}` |" in table, name
    assert "| `learning_rate` | number | required | > 0, ≤ 100 |" in table
    assert '| `dataset` | one of `digits`, `spirals`, `mnist`, `fashion_mnist` | `"digits"` | — |' in table
    assert (
        "| `architecture.hidden` (mlp) | list of integer | `[100, 100, 100]` | 1–10 items, each ≥ 1, ≤ 2048 |"
        in (table)
    )
    assert "| `target_accuracy` | number or null | `null` | > 0, ≤ 1 |" in table


def test_a_stale_table_fails_the_check_and_the_update_fixes_it(tmp_path: Path) -> None:
    current = README.read_text(encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        current.replace("| `seed` | integer | `0` |", "| `seed` | integer | `1` |"), encoding="utf-8"
    )
    assert main(["--check", "--readme", str(readme)]) == 1

    assert main(["--readme", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == with_reference(current) == current
    assert main(["--check", "--readme", str(readme)]) == 0
