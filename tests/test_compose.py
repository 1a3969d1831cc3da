"""The deployment files hang together: no Docker engine runs here, so the compose file is parsed and every
service, healthcheck, dependency, GPU reservation and command it names is checked against the project, and
the GPU worker's command is started here with compose's environment."""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.db.migrate import upgrade_database
from core.settings import Settings
from core.store import Store
from tests.fixtures.databases import create_postgres_database, drop_postgres_database, postgres_available
from tests.fixtures.requirements import require
from tests.fixtures.worker import LIVENESS_ENVIRONMENT, RedisServer
from worker.gpu_slots import claim_slot

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def command_of(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def dockerfile_stages() -> dict[str, str]:
    """Each named stage's instructions, by stage name."""
    stages: dict[str, str] = {}
    name = ""
    for line in DOCKERFILE.splitlines():
        match = re.match(r"^FROM\s+\S+\s+AS\s+(\S+)", line, flags=re.IGNORECASE)
        if match:
            name = match.group(1)
            stages[name] = ""
        elif name:
            stages[name] += line + "\n"
    return stages


def queues_of(service: str) -> set[str]:
    command = command_of(service)
    return set(command[command.index("-Q") + 1].split(","))


def test_every_expected_service_is_there() -> None:
    assert {"postgres", "redis", "migrate", "api", "worker", "worker-cpu"} <= set(SERVICES)


def test_postgres_is_healthchecked_with_pg_isready() -> None:
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])


def test_redis_keeps_an_append_only_file() -> None:
    command = command_of("redis")
    assert command[command.index("--appendonly") + 1] == "yes"


def test_every_healthy_condition_points_at_a_healthchecked_service() -> None:
    for service, definition in SERVICES.items():
        for dependency, condition in definition.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{service} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{service} waits on {dependency}'s health"


@pytest.mark.parametrize("service", ["api", "worker", "worker-cpu"])
def test_app_services_wait_for_the_migration_to_finish(service: str) -> None:
    assert SERVICES[service]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_migration_is_one_shot_alembic_upgrade_after_postgres_is_healthy() -> None:
    migrate = SERVICES["migrate"]
    assert command_of("migrate") == ["alembic", "upgrade", "head"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"
    ini = configparser.ConfigParser(defaults={"here": str(ROOT)})
    assert ini.read(ROOT / "alembic.ini"), "alembic.ini is missing"
    assert (ROOT / ini["alembic"]["script_location"] / "env.py").is_file()


def test_api_healthcheck_probes_a_route_the_app_serves() -> None:
    healthcheck = " ".join(SERVICES["api"]["healthcheck"]["test"])
    path = re.search(r"127\.0\.0\.1:8000(/\w+)", healthcheck)
    assert path is not None
    command = command_of("api")
    assert command[0] == "uvicorn" and command[command.index("--port") + 1] == "8000"
    module_name, attribute = command[1].split(":")
    app = getattr(importlib.import_module(module_name), attribute)
    assert "get" in app.openapi()["paths"][path.group(1)]


def test_gpu_worker_reserves_the_nodes_gpus_and_consumes_the_gpu_queue() -> None:
    devices = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        device["driver"] == "nvidia" and "gpu" in device["capabilities"] and device["count"] == "all"
        for device in devices
    )
    assert queues_of("worker") == {"default", "gpu"}
    assert "profiles" not in SERVICES["worker"]


def test_a_further_nodes_workers_reach_the_first_nodes_services_by_two_host_variables() -> None:
    environment = SERVICES["worker"]["environment"]
    assert "@${POSTGRES_HOST:-postgres}:5432/" in environment["DATABASE_URL"]
    assert environment["BROKER_URL"].startswith("redis://${REDIS_HOST:-redis}:")
    assert environment["DATABASE_URL"] == SERVICES["api"]["environment"]["DATABASE_URL"]


def test_scaled_gpu_workers_share_a_slots_volume_that_the_image_lets_them_write() -> None:
    """`--scale worker=N`: every replica sees every GPU and pins itself to one through the slots folder,
    which must be one named volume for all of them, at a path the image creates for its user."""
    slots_dir = SERVICES["worker"]["environment"]["BNLAB_GPU_SLOTS_DIR"]
    mounts = dict(reversed(volume.split(":")[:2]) for volume in SERVICES["worker"]["volumes"])
    assert mounts[slots_dir] in COMPOSE["volumes"], (
        "the slots folder is a named volume shared by the replicas"
    )
    assert "container_name" not in SERVICES["worker"], "a fixed container name cannot be scaled"
    base = dockerfile_stages()["base"]
    assert re.search(rf"mkdir -p [^\n]*{re.escape(slots_dir)}", base) and "chown -R bnlab:bnlab /data" in base
    assert slots_dir.startswith("/data/")


def test_cpu_worker_is_an_opt_in_profile_consuming_the_cpu_queue() -> None:
    assert SERVICES["worker-cpu"]["profiles"] == ["cpu"]
    assert queues_of("worker-cpu") == {"default", "cpu"}
    assert "deploy" not in SERVICES["worker-cpu"]


@pytest.mark.parametrize("service", ["worker", "worker-cpu"])
def test_workers_run_the_projects_celery_app_on_a_prefork_pool_of_one(service: str) -> None:
    command = command_of(service)
    assert command[:2] == ["celery", "-A"]
    assert importlib.util.find_spec(command[2]) is not None, f"{command[2]} is not a module of the project"
    assert "--pool=prefork" in command and "--concurrency=1" in command


def test_every_built_service_names_a_dockerfile_target() -> None:
    stages = dockerfile_stages()
    for service, definition in SERVICES.items():
        if "build" in definition:
            assert definition["build"]["target"] in stages, f"{service} builds a missing target"
    assert SERVICES["api"]["build"]["target"] == "api"
    assert SERVICES["migrate"]["build"]["target"] == "api"
    assert SERVICES["worker"]["build"]["target"] == "worker"


def test_images_run_as_a_non_root_user() -> None:
    for target in ("api", "worker"):
        users = re.findall(r"^USER\s+(\S+)", dockerfile_stages()[target], flags=re.MULTILINE)
        assert users and users[-1] not in {"root", "0"}, f"target {target} runs as root"


def test_api_image_carries_no_torch_and_the_worker_image_the_cuda_build() -> None:
    stages = dockerfile_stages()
    assert "torch" not in stages["api"] and "[worker]" not in stages["api"]
    assert re.search(r"--index-url\s+\S+\s+torch==2\.13\.0", stages["worker"])
    assert '".[worker]"' in stages["worker"]


def test_paths_the_image_copies_exist() -> None:
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"the Dockerfile copies missing {source}"


ENV_EXAMPLE = ROOT / ".env.example"


def env_names(field_name: str) -> list[str]:
    alias = Settings.model_fields[field_name].validation_alias
    choices = getattr(alias, "choices", None)
    return [str(choice) for choice in choices] if choices else [f"BNLAB_{field_name.upper()}"]


def test_env_example_lists_every_setting() -> None:
    listed = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))
    missing = [name for name in Settings.model_fields if not listed & set(env_names(name))]
    assert missing == []


def test_env_example_copied_as_is_changes_no_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for field_name in Settings.model_fields:
        for name in env_names(field_name):
            monkeypatch.delenv(name, raising=False)
    from_example = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_example.model_dump() == defaults.model_dump()


@pytest.mark.service
def test_the_gpu_worker_command_starts_with_composes_environment_registers_and_claims_a_gpu_slot(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    """Compose's worker command and environment, run here against this machine's PostgreSQL and a private
    Redis (the hosts `postgres` and `redis` exist only in compose), believing in a GPU as a GPU node's
    probe would find one."""
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    name, url = create_postgres_database()
    slots = tmp_path / "gpu-slots"
    worker_environment = SERVICES["worker"]["environment"]
    environment = {
        **os.environ,
        **{key: str(value) for key, value in worker_environment.items()},
        **LIVENESS_ENVIRONMENT,
        "DATABASE_URL": url,
        "BROKER_URL": private_redis.url.rsplit("/", 1)[0] + "/9",
        "BNLAB_GPU_SLOTS_DIR": str(slots),
        "BNLAB_WORKER_DEVICE_KIND": "cuda",
        "PYTHONPATH": str(ROOT),
    }
    environment.pop("CUDA_VISIBLE_DEVICES", None)
    store: Store | None = None
    process: subprocess.Popen[bytes] | None = None
    try:
        upgrade_database(url)
        store = Store(url)
        with (tmp_path / "worker.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", *command_of("worker")],
                cwd=ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while not (workers := store.list_workers(alive_seconds=3)):
            assert process.poll() is None and time.monotonic() < deadline, (
                tmp_path / "worker.log"
            ).read_text()
            time.sleep(0.2)
        [worker] = workers
        assert (worker.queues, worker.device["kind"]) == (["default", "gpu"], "cuda")
        taken = claim_slot(slots, 2)  # the worker holds slot 0: the next claim gets slot 1
        assert taken is not None and taken[0] == 1
        taken[1].close()
    finally:
        if process is not None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if store is not None:
            store.dispose()
        drop_postgres_database(name)
