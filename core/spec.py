"""The job spec: everything needed to rebuild a training run, validated before anything is queued.

Torch-free on purpose: the API validates specs without importing the training core. Every field has a
bound, so one request cannot exhaust a worker. The whole spec is stored with the job, so a run can be
rebuilt from what was saved.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

MAX_STEPS = 100_000  # ~2 min of the paper's MLP on one CPU thread; sweeps multiply it
MAX_WIDTH = 2048  # units per hidden layer
MAX_DEPTH = 10  # hidden layers of an MLP
MAX_CNN_DEPTH = 3  # each conv block halves the image; digits are 8x8
MAX_CHANNELS = 256
MAX_BATCH_SIZE = 4096
MAX_NAME_LENGTH = 200

MAX_DEFAULT_GROUPS = 32  # group norm's usual group count (Wu & He 2018), where the width allows

Activation = Literal["sigmoid", "tanh", "relu"]
Normalization = Literal["none", "batch", "layer", "group"]
BUILT_IN_DATASETS = ("digits", "spirals", "mnist", "fashion_mnist")
# An uploaded dataset (`POST /v1/datasets`); whether it exists is checked where the spec is submitted.
USER_DATASET_PATTERN = re.compile(r"^user:[a-z0-9][a-z0-9_.-]{0,63}$")
IMAGE_DATASETS: frozenset[str] = frozenset({"digits", "mnist", "fashion_mnist"})
# Matched whole (fullmatch): `$` would let "cpu\n" through. A GPU index is 0-99 without leading zeros;
# whether a worker has that GPU only the workers know (the job waits on the gpu queue until one takes it).
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:(0|[1-9][0-9]?))?")

Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
Channels = Annotated[int, Field(ge=1, le=MAX_CHANNELS)]


def unstorable_text(value: object) -> str | None:
    """Why `value` (or a string anywhere inside it) cannot be stored, or None when it can. PostgreSQL
    refuses NUL in text and no database (nor JSON encoder) takes a lone UTF-16 surrogate: refused up
    front, both modes answer the same 422 instead of a 500 on one and a stored NUL on the other."""
    if isinstance(value, str):
        if "\x00" in value:
            return "text must not contain NUL (\\u0000)"
        if not value.isascii() and any("\ud800" <= character <= "\udfff" for character in value):
            return "text must not contain a lone surrogate (\\ud800-\\udfff)"
        return None
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        for item in value:
            reason = unstorable_text(item)
            if reason is not None:
                return reason
    return None


def with_unstorable_text_replaced(value: object) -> object:
    """`value` with NUL and lone surrogates replaced by U+FFFD in every string inside it: how a spec stored
    before such text was refused (SQLite kept NUL) is read back without failing validation."""
    if isinstance(value, str):
        if unstorable_text(value) is None:
            return value
        return "".join(
            "\ufffd" if character == "\x00" or "\ud800" <= character <= "\udfff" else character
            for character in value
        )
    if isinstance(value, dict):
        return {
            with_unstorable_text_replaced(key): with_unstorable_text_replaced(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [with_unstorable_text_replaced(item) for item in value]
    return value


class StrictModel(BaseModel):
    """What every submitted document shares. Unknown fields are errors: a typo like `learning_rat` must not
    silently train with the default. Numbers are finite (NaN, Infinity and 1e999 are 422s, not values a
    worker trains with or a JSON answer cannot carry), and text is storable (`unstorable_text`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _storable_text(cls, value: object) -> object:
        reason = unstorable_text(value)
        if reason is not None:
            raise ValueError(reason)
        return value


class MLPArchitecture(StrictModel):
    """Fully connected net: input → hidden widths → 10-way (or 2-way) linear head."""

    kind: Literal["mlp"] = "mlp"
    hidden: list[Width] = Field(
        default_factory=lambda: [100, 100, 100],
        min_length=1,
        max_length=MAX_DEPTH,
        description="widths of the hidden layers (the paper's MNIST net: three layers of 100)",
    )
    activation: Activation = Field("sigmoid", description="the paper's Fig. 1 uses sigmoid")


class CNNArchitecture(StrictModel):
    """Conv blocks (3x3 conv → BN → activation → 2x2 max-pool) and a linear head, for image datasets."""

    kind: Literal["cnn"] = "cnn"
    channels: list[Channels] = Field(
        default_factory=lambda: [16, 32],
        min_length=1,
        max_length=MAX_CNN_DEPTH,
        description="output channels of each conv block (each block halves the image)",
    )
    activation: Activation = Field("relu", description="the nonlinearity of each conv block")


Architecture = Annotated[MLPArchitecture | CNNArchitecture, Field(discriminator="kind")]


class BNNoise(StrictModel):
    """Noisy BN's two parameters (Santurkar et al. 2018): see JobSpec.bn_noise for what they mean."""

    mean_std: float = Field(0.5, ge=0, le=10, description="std of each unit's random shift m")
    scale_std: float = Field(
        0.5, ge=0, le=10, description="std of the logarithm of each unit's random factor s"
    )


class JobSpec(StrictModel):
    """One training run. The first four fields are required; the rest default to the paper's digits setup."""

    architecture: Architecture
    batch_norm: bool = Field(
        description="insert a BN layer before every hidden nonlinearity; may be left out where normalization "
        "is given (true means normalization batch, false none)"
    )
    normalization: Normalization = Field(
        "none",
        description="the layer before every hidden nonlinearity: none; batch (BN, as batch_norm true); layer "
        "(each example's units, or for a cnn its channels and positions, normalized together: torch's "
        "LayerNorm, GroupNorm with one group for a cnn); group (torch's GroupNorm over `groups` groups of "
        "units or channels); each with a learned scale and shift. Given with batch_norm, the two must agree",
    )
    groups: int | None = Field(
        None,
        ge=1,
        le=MAX_WIDTH,
        description="groups of each group-norm layer (normalization group only), dividing every hidden width "
        "or channel count; null: per layer the largest divisor of its width at most 32",
    )
    learning_rate: float = Field(gt=0, le=100, description="step size; BN is claimed to tolerate large ones")
    dropout: float = Field(ge=0, lt=1, description="drop probability after each hidden nonlinearity")

    name: str = Field("", max_length=MAX_NAME_LENGTH, description="a label for lists, plots and compare")
    dataset: str = Field(
        "digits",
        max_length=70,
        examples=[*BUILT_IN_DATASETS, "user:my-data"],
        description="digits: the 1,797 8x8 handwritten digits shipped with scikit-learn (offline); spirals: "
        "two noisy spirals in the plane generated from the seed (2 classes); mnist, fashion_mnist: 28x28 "
        "images, downloaded once and checked against their SHA-256; user:<name>: a dataset uploaded with "
        "POST /v1/datasets (a cnn needs one of (N, H, W) or (N, C, H, W) images)",
    )
    optimizer: Literal["sgd", "momentum", "adam"] = Field(
        "sgd", description="plain SGD, SGD with momentum 0.9, or Adam"
    )
    init: Literal["default", "he", "xavier", "gaussian"] = Field(
        "default",
        description="weights: torch's own init, Kaiming normal, Glorot uniform, or N(0, init_std²)",
    )
    init_std: float = Field(
        0.01, gt=0, le=10, description="std of the gaussian init (only for init=gaussian)"
    )
    bn_momentum: float = Field(0.1, gt=0, le=1, description="running-average weight of the newest batch")
    bn_eps: float = Field(
        1e-5, gt=0, le=1, description="added to the variance before its square root (batch, layer or group)"
    )
    bn_implementation: Literal["torch", "bnlab"] = Field(
        "torch", description="torch's batch norm, or bnlab's: the paper's Algorithm 1, written out"
    )
    bn_noise: BNNoise | None = Field(
        None,
        description="noisy BN (Santurkar et al. 2018): after each BN layer, at every training step, each "
        "unit's output y becomes s·y + m, m ~ N(0, mean_std²) and log s ~ N(0, scale_std²) drawn afresh "
        "for every step, layer and unit (shared by the batch's examples) from the job's seed; evaluation "
        "and probes see none, but train-mode telemetry sees it as training does. Needs normalization batch; "
        "null = off",
    )
    batch_size: int = Field(
        60, ge=1, le=MAX_BATCH_SIZE, description="examples per step; at least 2 with batch_norm"
    )
    steps: int = Field(2000, ge=1, le=MAX_STEPS, description="training steps, one batch each")
    eval_every: int = Field(
        50,
        ge=1,
        le=MAX_STEPS,
        # A short run that leaves eval_every at its default is checked too: a spec must validate again from
        # its own stored form (the worker and the API's answers re-read it).
        validate_default=True,
        description="steps between evaluations on the validation split, at most steps; steps_to_target is "
        "resolved to this",
    )
    target_accuracy: float | None = Field(
        None, gt=0, le=1, description="the validation accuracy steps_to_target counts to; null = none"
    )
    telemetry_every: int = Field(
        0,
        ge=0,
        le=MAX_STEPS,
        description="steps between the paper's Fig. 1 statistics of each layer; 0 = off",
    )
    telemetry_mode: Literal["inference", "train"] = Field(
        "inference",
        description="inference: Fig. 1 as the paper measured it, on a fixed held-out probe set (the first "
        "256 validation examples of split seed 0; of the official test set for mnist, fashion_mnist) with BN "
        "normalizing by its population statistics; train: on the first 256 training examples of the job's "
        "split with BN normalizing by the probe batch's own statistics, as training does",
    )
    landscape_every: int = Field(
        0,
        ge=0,
        le=MAX_STEPS,
        description="steps between loss-landscape probes along the gradient (Santurkar et al. 2018); 0 = off",
    )
    checkpoint_every: int = Field(
        500, ge=0, le=MAX_STEPS, description="steps between checkpoints a resumed job starts from; 0 = none"
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**31 - 1,
        description="initialization, batches, dropout; the digits split and spirals unless split_seed is set",
    )
    split_seed: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,
        description="draws the train/validation split (digits, spirals) apart from seed; null: the seed does",
    )
    stop_at_target: bool = Field(
        False, description="end the run, succeeded, at the first evaluation at or above target_accuracy"
    )
    device: str = Field(
        "auto",
        max_length=16,
        description="auto (the worker's: a GPU if it has one), cpu, cuda or cuda:N (N from 0 to 99); a job "
        "for a GPU no worker has waits queued",
    )

    @model_validator(mode="before")
    @classmethod
    def _normalization_from_batch_norm(cls, data: Any) -> Any:
        """batch_norm and normalization say one thing two ways: whichever is given fills in the other."""
        if not isinstance(data, dict):
            return data
        if "batch_norm" not in data and data.get("normalization") in get_args(Normalization):
            return {**data, "batch_norm": data["normalization"] == "batch"}
        if "normalization" not in data and isinstance(data.get("batch_norm"), bool):
            return {**data, "normalization": "batch" if data["batch_norm"] else "none"}
        return data

    @field_validator("normalization")
    @classmethod
    def _agrees_with_batch_norm(cls, value: str, info: ValidationInfo) -> str:
        batch_norm = info.data.get("batch_norm")
        if batch_norm is not None and batch_norm != (value == "batch"):
            raise ValueError(f"normalization {value} contradicts batch_norm {str(batch_norm).lower()}")
        return value

    @field_validator("groups")
    @classmethod
    def _groups_divide_every_width(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return value
        if info.data.get("normalization") != "group":
            raise ValueError("groups is only for normalization group")
        architecture = info.data.get("architecture")
        if architecture is not None:
            widths = architecture.hidden if architecture.kind == "mlp" else architecture.channels
            if any(width % value for width in widths):
                raise ValueError(f"groups ({value}) must divide every hidden width ({widths})")
        return value

    @field_validator("bn_noise")
    @classmethod
    def _noise_needs_batch_norm(cls, value: BNNoise | None, info: ValidationInfo) -> BNNoise | None:
        if value is not None and info.data.get("normalization") != "batch":
            raise ValueError("bn_noise is noise after BN layers: it needs normalization batch")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not DEVICE_PATTERN.fullmatch(value):
            raise ValueError("device must be auto, cpu, cuda or cuda:N")
        return value

    # Cross-field rules are field validators (fields are validated in declaration order), so that the
    # error's `loc` names the offending field rather than the whole body.
    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        if value not in BUILT_IN_DATASETS and not USER_DATASET_PATTERN.fullmatch(value):
            raise ValueError(
                f"dataset must be one of {', '.join(BUILT_IN_DATASETS)} or user:<name> (uploaded)"
            )
        return value

    @field_validator("dataset")
    @classmethod
    def _cnn_needs_images(cls, value: str, info: ValidationInfo) -> str:
        architecture = info.data.get("architecture")
        user = value.startswith("user:")  # its shape is checked against the upload where it is submitted
        if (
            architecture is not None
            and architecture.kind == "cnn"
            and value not in IMAGE_DATASETS
            and not user
        ):
            raise ValueError(f"architecture cnn needs an image dataset ({', '.join(sorted(IMAGE_DATASETS))})")
        return value

    @field_validator("batch_size")
    @classmethod
    def _batch_statistics_need_two(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("batch_norm") and value < 2:
            raise ValueError("batch_size must be at least 2 when batch_norm is on (batch variance needs two)")
        return value

    @field_validator("eval_every")
    @classmethod
    def _eval_within_steps(cls, value: int, info: ValidationInfo) -> int:
        steps = info.data.get("steps")
        if steps is not None and value > steps:
            raise ValueError(f"eval_every ({value}) must not exceed steps ({steps})")
        return value

    @field_validator("stop_at_target")
    @classmethod
    def _stopping_needs_a_target(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("target_accuracy") is None:
            raise ValueError("stop_at_target needs a target_accuracy to stop at")
        return value


def groups_of(spec: JobSpec, width: int) -> int:
    """The groups of a group-norm layer `width` units (channels) wide: the spec's, else the largest divisor
    of the width at most MAX_DEFAULT_GROUPS."""
    if spec.groups is not None:
        return spec.groups
    return max(count for count in range(1, min(width, MAX_DEFAULT_GROUPS) + 1) if width % count == 0)


def queue_for_device(device: str) -> str:
    """The Celery queue a spec's device routes to: cpu → cpu, cuda… → gpu, auto → default."""
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        return "gpu"
    return "default"
