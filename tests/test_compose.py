"""The deployment files hang together: no Docker engine runs here, so the compose file is parsed and every
service, healthcheck, dependency, GPU reservation and command it names is checked against the project."""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings

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


def test_gpu_worker_reserves_an_nvidia_gpu_and_consumes_the_gpu_queue() -> None:
    devices = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(device["driver"] == "nvidia" and "gpu" in device["capabilities"] for device in devices)
    assert queues_of("worker") == {"default", "gpu"}
    assert "profiles" not in SERVICES["worker"]


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
