"""The submit-time check of specs that train on an uploaded dataset (`"dataset": "user:<name>"`): the
dataset must exist, and a cnn needs images ((channels, height, width) examples). A 422 otherwise."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi.exceptions import RequestValidationError

from core.datasets import user_dataset_name
from core.spec import JobSpec
from core.store import StoreInterface


def check_user_datasets(store: StoreInterface, specs: Iterable[JobSpec], location: tuple[str, ...]) -> None:
    """Raise the 422 (at `location`, e.g. ("body", "dataset")) for the first spec whose uploaded dataset is
    unknown or does not fit its architecture."""
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        name = user_dataset_name(spec.dataset)
        if name is None or (spec.dataset, spec.architecture.kind) in seen:
            continue
        seen.add((spec.dataset, spec.architecture.kind))
        dataset = store.get_dataset(name)
        if dataset is None:
            message = f"no uploaded dataset is named {name} (GET /v1/datasets lists them)"
        elif spec.architecture.kind == "cnn" and len(dataset.input_shape) != 3:
            shape = dataset.input_shape
            message = f"architecture cnn needs images; dataset {name} holds examples of shape {shape}"
        else:
            continue
        raise RequestValidationError(
            [{"loc": location, "msg": message, "type": "value_error", "input": spec.dataset}]
        )
