"""`/v1/datasets`: upload a dataset (multipart: `name`, `file`, optional `validation_file` and
`label_column`), list them, delete one. Parsing and checks are numpy only (`core.datasets`): the API has
no torch. The arrays are stored in the database by SHA-256, where every worker reads them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Path, Response, UploadFile, status
from fastapi.exceptions import RequestValidationError

from api.datasets.schemas import DatasetList, DatasetOut
from api.dependencies import SettingsDep, StoreDep
from api.errors import DATABASE_DOWN, conflict, error_answer, not_found
from api.limits import BODY_REFUSED
from api.schemas import ErrorOut
from core.datasets import NAME_PATTERN, DatasetCaps, DatasetInvalid, check_dataset, read_upload, to_blob

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

DatasetName = Annotated[str, Path(pattern=NAME_PATTERN, description="the dataset's name")]
NOT_FOUND = error_answer(404, "no dataset of this name")


def _invalid(field: str, message: str, value: object = None) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", field), "msg": message, "type": "value_error", "input": value}]
    )


async def _read_capped(field: str, upload: UploadFile, budget: int) -> bytes:
    """The file's bytes; a 422 naming the field when it is larger than what is left of the upload cap."""
    content = await upload.read(budget + 1)
    if len(content) > budget:
        raise _invalid(field, f"the upload is over the cap of {budget} bytes (max_dataset_bytes)")
    return content


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    summary="Upload a dataset: an NPZ file with x and y arrays, or a CSV file with a label column",
    responses={
        409: {"model": ErrorOut, "description": "a dataset of this name exists"},
        **BODY_REFUSED,
        **DATABASE_DOWN,
    },
)
async def upload_dataset(
    store: StoreDep,
    settings: SettingsDep,
    name: Annotated[str, Form(pattern=NAME_PATTERN, description='specs name it "user:<name>"')],
    file: Annotated[UploadFile, File(description="NPZ (x, y; optionally x_val, y_val) or CSV with a header")],
    validation_file: Annotated[
        UploadFile | None, File(description="the validation split, of the same kind (optional)")
    ] = None,
    label_column: Annotated[str, Form(max_length=100, description="the CSV's label column")] = "label",
) -> DatasetOut:
    """x: (N, features), (N, H, W) or (N, C, H, W) numbers, all finite; y: N whole-number class labels
    0..K-1, each class present in training. Caps: settings `max_dataset_bytes`, `max_dataset_examples`,
    `max_dataset_features`, `max_dataset_classes`. Any failed check is a 422 naming the field and the
    problem, and stores nothing. The same arrays uploaded twice are stored once (same SHA-256)."""
    caps = DatasetCaps(
        settings.max_dataset_examples, settings.max_dataset_features, settings.max_dataset_classes
    )
    content = await _read_capped("file", file, settings.max_dataset_bytes)
    validation_content = (
        await _read_capped("validation_file", validation_file, settings.max_dataset_bytes - len(content))
        if validation_file is not None
        else None
    )
    try:
        train = read_upload("file", file.filename or "", content, label_column)
        validation = (
            read_upload("validation_file", validation_file.filename or "", validation_content, label_column)
            if validation_file is not None and validation_content is not None
            else None
        )
        arrays = check_dataset(train, validation, caps)
    except DatasetInvalid as invalid:
        raise _invalid(invalid.field, str(invalid)) from None
    blob, sha256 = to_blob(arrays)
    saved = store.save_dataset(
        name,
        blob,
        sha256=sha256,
        train_size=len(arrays.train_y),
        val_size=0 if arrays.val_y is None else len(arrays.val_y),
        input_shape=arrays.input_shape,
        num_classes=arrays.num_classes,
    )
    if saved is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"a dataset named {name} exists; delete it first or pick another name",
        )
    return DatasetOut.model_validate(saved)


@router.get(
    "",
    status_code=status.HTTP_200_OK,
    response_model=DatasetList,
    summary="List uploaded datasets by name",
    responses=DATABASE_DOWN,
)
def list_datasets(store: StoreDep) -> DatasetList:
    return DatasetList(items=[DatasetOut.model_validate(dataset) for dataset in store.list_datasets()])


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete an uploaded dataset (refused while a queued or running job trains on it)",
    responses={
        **NOT_FOUND,
        **error_answer(409, "a queued or running job trains on it"),
        **DATABASE_DOWN,
    },
)
def delete_dataset(name: DatasetName, store: StoreDep) -> Response:
    outcome = store.delete_dataset(name)
    if outcome == "not_found":
        raise not_found(f"dataset {name}")
    if outcome == "in_use":
        raise conflict(f"dataset {name} is used by a queued or running job; cancel it first")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
