"""One settings object for every process, read from the environment or `.env`.

The embedded default (SQLite + Celery over SQLite, state under ./var/) needs no configuration at all;
the deployed mode sets DATABASE_URL and BROKER_URL. Validators fail fast on nonsense.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")


class Settings(BaseSettings):
    """Process configuration. Names in the environment: DATABASE_URL, BROKER_URL, BNLAB_<FIELD>."""

    # validate_by_name: `Settings(field=...)` sets a field that also has environment aliases.
    model_config = SettingsConfigDict(
        env_prefix="BNLAB_", env_file=".env", extra="ignore", validate_by_name=True
    )

    database_url: str = Field(
        f"sqlite:///{VAR_DIR}/bnlab.db", validation_alias=AliasChoices("DATABASE_URL", "BNLAB_DATABASE_URL")
    )
    broker_url: str = Field(
        f"sqla+sqlite:///{VAR_DIR}/broker.db", validation_alias=AliasChoices("BROKER_URL", "BNLAB_BROKER_URL")
    )
    data_dir: Path = Field(VAR_DIR / "data", description="where mnist / fashion_mnist IDX files are kept")
    dataset_mirror: str = Field(
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        description="base URL that mnist IDX .gz files are downloaded from when absent",
    )
    fashion_mnist_mirror: str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    torch_threads: int = Field(1, ge=1, le=256, description="tiny nets on shared cores run fastest on one")
    cuda_graphs: bool = Field(
        True,
        description="on CUDA, replay a stack's training step as one captured graph (eager if capture fails)",
    )

    # Liveness (DESIGN: heartbeat 10 s, lease 60 s, lost jobs looked for every 15 s).
    heartbeat_seconds: float = Field(10.0, gt=0)
    lease_seconds: float = Field(60.0, gt=0)
    republish_seconds: float = Field(
        15.0,
        gt=0,
        # BNLAB_SWEEP_SECONDS is its name from before the republisher was named for what it does.
        validation_alias=AliasChoices("BNLAB_REPUBLISH_SECONDS", "BNLAB_SWEEP_SECONDS"),
        description="how often the API's republisher looks for jobs the broker lost",
    )
    requeue_after_seconds: float = Field(
        3600.0, gt=0, validation_alias=AliasChoices("REQUEUE_AFTER", "BNLAB_REQUEUE_AFTER_SECONDS")
    )
    max_lease_losses: int = Field(3, ge=1)
    worker_device_kind: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="what a worker (and the embedded launcher choosing its queues) believes it trains on: "
        "auto probes CUDA through core.ml; cpu or cuda is taken as said, without probing (tests, or a node "
        "whose GPU is known)",
    )
    gpu_slots_dir: str = Field(
        "",
        description="a folder shared by the workers of one node (docker compose: a volume): each worker "
        "claims a slot there by a file lock and trains on that slot's GPU alone (CUDA_VISIBLE_DEVICES), so "
        "N workers on one node spread over its GPUs instead of crowding the first; empty = no pinning",
    )
    workers_per_gpu: int = Field(1, ge=1, le=64, description="slots per GPU in gpu_slots_dir")
    database_statement_timeout_seconds: float = Field(
        30.0,
        ge=0,
        description="PostgreSQL: the server cancels a statement that runs longer, and a request or a "
        "worker's write gives up on a server that has not answered a second after that (silent: packets "
        "dropped, process hung), instead of waiting minutes for TCP; 0 = no limit",
    )

    # Limits. A job's deadline counts from the start of its training, not from its lease.
    job_soft_time_limit_seconds: int = Field(6 * 3600, ge=1)
    # Celery's own limits, backstops for a job stuck where the deadline above is never checked.
    celery_soft_time_limit_grace_seconds: int = Field(
        60,
        ge=0,
        description="Celery's soft time limit (an exception raised inside the task) comes this long after "
        "the job's deadline; 0 = none",
    )
    celery_hard_time_limit_grace_seconds: int = Field(
        60,
        ge=1,
        description="Celery's hard time limit (the pool process is killed, and the jobs it held fail) comes "
        "this long after the soft limit, or after the job's deadline when there is none",
    )
    worker_memory_limit_mb: int = Field(
        0,
        ge=0,
        description="address space of each worker pool process (RLIMIT_AS), so that a job that asks for "
        "too much memory fails with an out-of-memory error instead of taking its node down; 0 = no limit. "
        "CPU workers only: CUDA reserves far more address space than it uses",
    )
    worker_niceness: int = Field(
        10,
        ge=0,
        le=19,
        description="nice value of each worker pool process: on a machine the workers share with the API, "
        "training yields the CPU to requests (submissions, streams, pages) and takes all of it whenever "
        "nothing else asks; 0 = the same priority as the API",
    )
    max_sweep_size: int = Field(256, ge=1, le=10_000)
    max_dataset_bytes: int = Field(
        64_000_000, ge=1024, le=2_000_000_000, description="largest dataset upload (its files together)"
    )
    max_dataset_examples: int = Field(200_000, ge=4, le=10_000_000, description="training + validation")
    max_dataset_features: int = Field(4096, ge=1, le=1_000_000, description="numbers per example")
    max_dataset_classes: int = Field(1000, ge=2, le=100_000)
    delete_wait_seconds: float = Field(
        30.0, ge=0, le=600, description="how long a delete waits for a running job to stop after its cancel"
    )
    max_fused_group_size: int = Field(
        16,
        ge=1,
        le=4096,
        description="a fused group of more jobs is split evenly into groups of at most this (cpu and auto "
        "devices: a CPU core trains the paper's MLP fastest per model in stacks of about 16)",
    )
    max_fused_gpu_group_size: int = Field(
        1024,
        ge=1,
        le=4096,
        description="the same for jobs whose device is cuda…: on one H200 fused groups of the paper's MLP "
        "were fastest at 1,024 models (`benchmarks/gpu_check.py` measures it on yours)",
    )
    max_body_bytes: int = Field(1_000_000, ge=1024)
    broker_polling_seconds: float = Field(0.1, gt=0, description="kombu SQLAlchemy transport polling")

    # Job event streams: one poller per API process reads the database this often for all open streams.
    events_poll_seconds: float = Field(0.25, gt=0, le=60)
    events_keepalive_seconds: float = Field(15.0, gt=0, le=300, description="comment sent on a quiet stream")

    access_log: bool = Field(
        False, description="embedded mode: uvicorn logs one line per HTTP request (the dashboard polls)"
    )
    # Host headers the API answers (api.hosts: a web page must not reach a local API through DNS
    # rebinding). Comma-separated names or addresses; `*.example.com` for subdomains, `*` for any.
    trusted_hosts: str = Field("localhost,127.0.0.1,[::1]")

    # Auth: comma-separated keys; empty = open. Read-only keys may only GET.
    api_keys: str = Field("", repr=False)
    read_only_api_keys: str = Field("", repr=False)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("DATABASE_URL must be a sqlite:/// or postgresql:// URL")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings(...)` instead of patching this)."""
    return Settings()
