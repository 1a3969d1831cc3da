"""`bnlab dataset …`: upload a dataset of your own (NPZ or CSV), list them, delete one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from client.cli_shared import (
    HELP_OPTIONS,
    JsonOption,
    connected,
    print_json,
    read_file,
)
from client.render import (
    datasets_table,
    terminal,
    visible,
    visible_strings,
)

dataset_app = typer.Typer(
    help="Datasets of your own: upload an NPZ (x, y) or a CSV with a label column, list them, delete one.",
    context_settings=HELP_OPTIONS,
    no_args_is_help=True,
)


@dataset_app.command("upload")
def dataset_upload(
    context: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help='Its name: specs train on it with dataset: "user:NAME".')
    ],
    data_file: Annotated[Path, typer.Argument(metavar="FILE.npz|csv", help="x and y arrays, or a CSV.")],
    validation: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="The validation split, a file of the same kind (else 20% is held out)."
        ),
    ] = None,
    label_column: Annotated[str, typer.Option(metavar="COLUMN", help="The CSV's label column.")] = "label",
    as_json: JsonOption = False,
) -> None:
    """Upload a dataset: NPZ with x (N, features) or (N, [C,] H, W) and y (labels 0..K-1), or a CSV."""
    files = {"file": read_file(data_file)}
    if validation is not None:
        files["validation_file"] = read_file(validation)
    with connected(context) as client:
        dataset = client.post_files("/v1/datasets", {"name": name, "label_column": label_column}, files)
    if as_json:
        print_json(dataset)
        return
    dataset = visible_strings(dataset)
    shape = "x".join(str(size) for size in dataset["input_shape"])
    typer.echo(
        f"Uploaded {dataset['name']}: {dataset['train_size']} training and {dataset['val_size']} validation "
        f"examples of shape {shape}, {dataset['num_classes']} classes, sha256 {dataset['sha256'][:12]}…"
    )
    typer.echo(f'Train on it with "dataset": "user:{dataset["name"]}".')


@dataset_app.command("list")
def dataset_list(context: typer.Context, as_json: JsonOption = False) -> None:
    """List uploaded datasets by name."""
    with connected(context) as client:
        page = client.get("/v1/datasets")
    if as_json:
        print_json(page)
    elif not page["items"]:
        typer.echo("No datasets. Upload one with bnlab dataset upload NAME FILE.")
    else:
        terminal().print(datasets_table(page["items"]))


@dataset_app.command("delete")
def dataset_delete(
    context: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="The dataset's name.")]
) -> None:
    """Delete an uploaded dataset (refused while a queued or running job trains on it)."""
    with connected(context) as client:
        client.delete(f"/v1/datasets/{name}")
    typer.echo(f"Deleted dataset {visible(name)}.")
