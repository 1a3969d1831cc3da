"""The README's job-spec reference, generated from the schema itself (`core.spec.JobSpec`).

`python -m core.spec_reference` rewrites the table between its two markers in README.md from the JSON
schema the API publishes (types, bounds, descriptions) and the fields' defaults; `--check` only says
whether README.md is current. A test runs the check, so the table cannot drift from the schema.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.spec import JobSpec

BEGIN_MARKER = (
    "<!-- job-spec-reference: generated from core.spec.JobSpec by `python -m core.spec_reference` -->"
)
END_MARKER = "<!-- end of job-spec-reference -->"
HEADER = ["field", "type", "default", "bounds", "description"]
BOUNDS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
README = Path(__file__).resolve().parents[1] / "README.md"

JsonSchema = dict[str, Any]


def number_text(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else json.dumps(value)


def type_text(schema: JsonSchema) -> str:
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(type_text(option) for option in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {type_text(schema['items'])}"
    return str(schema["type"])


def bounds_text(schema: JsonSchema) -> str:
    parts: list[str] = []
    for option in schema.get("anyOf", [schema]):
        parts += [f"{symbol} {number_text(option[key])}" for key, symbol in BOUNDS if key in option]
        if "maxLength" in option:
            parts.append(f"at most {option['maxLength']} characters")
        if "minItems" in option or "maxItems" in option:
            parts.append(f"{option.get('minItems', 0)}–{option.get('maxItems', '…')} items")
        if "items" in option and bounds_text(option["items"]) != "":
            parts.append(f"each {bounds_text(option['items'])}")
    return ", ".join(parts)


def variants(model: type[BaseModel], field_name: str) -> list[type[BaseModel]]:
    """The models a field holds one of (a union discriminated by `kind`, such as the architecture, or one
    model or null, such as bn_noise); [] for a plain field."""
    members = typing.get_args(model.model_fields[field_name].annotation)
    return [member for member in members if isinstance(member, type) and issubclass(member, BaseModel)]


def field_rows(model: type[BaseModel], prefix: str = "", variant: str = "") -> list[list[str]]:
    properties: dict[str, JsonSchema] = model.model_json_schema()["properties"]
    rows: list[list[str]] = []
    for name, field in model.model_fields.items():
        schema = properties[name]
        label = f"`{prefix}{name}`" + (f" ({variant})" if variant else "")
        default = (
            "required"
            if field.is_required()
            else f"`{json.dumps(field.get_default(call_default_factory=True))}`"
        )
        nested = variants(model, name)
        if nested and not all("kind" in member.model_fields for member in nested):  # an object or null
            rows.append([label, "object or null", default, "", schema.get("description", "")])
            for member in nested:
                rows += field_rows(member, f"{prefix}{name}.")
            continue
        if nested:
            kinds = " or ".join(f"`{member.model_fields['kind'].default}`" for member in nested)
            description = "the net: one of the kinds below, chosen by `kind`"
            rows.append([label, f"object: {kinds}", default, "", description])
            for member in nested:
                rows += field_rows(member, f"{prefix}{name}.", member.model_fields["kind"].default)
            continue
        # A variant's `kind` row says what that variant is.
        description = schema.get("description") or ((model.__doc__ or "") if "const" in schema else "")
        rows.append([label, type_text(schema), default, bounds_text(schema), description])
    return rows


def markdown_table(rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") or "—" for cell in cells) + " |"

    return "\n".join([line(HEADER), line(["---"] * len(HEADER)), *(line(row) for row in rows)])


def spec_reference() -> str:
    """The whole generated block, markers included."""
    return f"{BEGIN_MARKER}\n{markdown_table(field_rows(JobSpec))}\n{END_MARKER}"


def with_reference(readme: str) -> str:
    """`readme` with the block between the markers replaced by the current reference."""
    begin, end = readme.find(BEGIN_MARKER), readme.find(END_MARKER)
    if begin < 0 or end < begin:
        raise ValueError(f"README lacks the markers {BEGIN_MARKER!r} … {END_MARKER!r}")
    return readme[:begin] + spec_reference() + readme[end + len(END_MARKER) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.spec_reference", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="only say whether README.md is current")
    parser.add_argument("--readme", type=Path, default=README, help="the file to update (default: README.md)")
    arguments = parser.parse_args(argv)
    current = arguments.readme.read_text(encoding="utf-8")
    updated = with_reference(current)
    if arguments.check:
        if updated != current:
            print(f"{arguments.readme}: the job-spec reference is out of date; python -m core.spec_reference")
            return 1
        return 0
    if updated != current:
        arguments.readme.write_text(updated, encoding="utf-8")
        print(f"{arguments.readme}: job-spec reference updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
