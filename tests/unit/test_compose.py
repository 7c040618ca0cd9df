"""compose/docker-compose.yml, read without a Docker engine: every long-running service has a
healthcheck, every depends_on points to a service that exists with a condition it can meet,
the files it mounts are in the repository, and the services the pipeline needs are there.
Where the ``docker`` command has the compose plugin, ``docker compose config`` checks it too."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

# PyYAML reads the file; the dev extras of pyproject.toml are to name it (pyyaml).
yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
FILE = COMPOSE / "docker-compose.yml"
MONITORING = ("prometheus", "grafana")  # their files are the monitoring work's

SPEC: dict[str, Any] = yaml.safe_load(FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = SPEC["services"]


def one_shot(service: dict[str, Any]) -> bool:
    return bool(service.get("restart", "no") == "no")


def mounts(service: dict[str, Any]) -> list[Path]:
    """The files and folders of the repository a service mounts (named volumes aside)."""
    found = []
    for volume in service.get("volumes", []):
        source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
        if source.startswith("."):
            found.append((COMPOSE / source).resolve())
    return found


def test_the_stack_has_every_service_of_the_pipeline() -> None:
    assert {
        "postgres",
        "rabbitmq",
        "migrate",
        "dispatcher-1",
        "dispatcher-2",
        "edge-1",
        "edge-2",
        "nginx",
        "prometheus",
        "grafana",
    } <= set(SERVICES)
    for name in MONITORING:
        assert SERVICES[name].get("profiles") == ["monitoring"], name
    assert all(
        "profiles" not in service for name, service in SERVICES.items() if name not in MONITORING
    )


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_long_running_service_has_a_healthcheck_and_one_shots_do_not_restart(name: str) -> None:
    service = SERVICES[name]
    if one_shot(service):
        assert name == "migrate", f"{name} is one-shot: only migrate should be"
        assert "healthcheck" not in service
        return
    check = service.get("healthcheck")
    assert check and check.get("test"), f"{name} runs for good and has no healthcheck"
    assert check["test"][0] in ("CMD", "CMD-SHELL"), name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_names_existing_services_with_conditions_they_can_meet(name: str) -> None:
    for other, rule in SERVICES[name].get("depends_on", {}).items():
        assert other in SERVICES, f"{name} depends on {other}, which does not exist"
        condition = rule["condition"]
        if condition == "service_completed_successfully":
            assert one_shot(SERVICES[other]), f"{name} waits for {other} to complete"
        else:
            assert condition == "service_healthy", (name, other, condition)
            assert "healthcheck" in SERVICES[other], f"{name} waits for {other} to be healthy"
        # A service of the default stack never waits for one of an optional profile.
        if "profiles" not in SERVICES[name]:
            assert "profiles" not in SERVICES[other], (name, other)


def test_the_pipelines_processes_start_in_order() -> None:
    migrate = SERVICES["migrate"]["depends_on"]
    assert migrate == {"postgres": {"condition": "service_healthy"}}
    for name in ("dispatcher-1", "dispatcher-2", "edge-1", "edge-2"):
        needs = SERVICES[name]["depends_on"]
        assert needs["migrate"] == {"condition": "service_completed_successfully"}, name
        assert needs["rabbitmq"] == {"condition": "service_healthy"}, name
    assert set(SERVICES["nginx"]["depends_on"]) == {"edge-1", "edge-2"}


def test_the_edges_trust_nginx_alone_and_outlast_their_drain() -> None:
    nginx_address = SERVICES["nginx"]["networks"]["default"]["ipv4_address"]
    for name in ("edge-1", "edge-2"):
        edge = SERVICES[name]
        assert edge["environment"]["TRUSTED_PROXIES"] == nginx_address
        assert "ports" not in edge, f"{name} is reached through nginx only"
        drain = float(edge["environment"]["EDGE_DRAIN_SECONDS"])
        grace = int(re.fullmatch(r"(\d+)s", edge["stop_grace_period"])[1])  # type: ignore[index]
        assert grace >= drain + 20, f"{name}: Docker would SIGKILL it during its drain"
        assert "/readyz" in " ".join(edge["healthcheck"]["test"])
    for name in ("dispatcher-1", "dispatcher-2"):
        assert SERVICES[name]["environment"]["DISPATCHER_METRICS_PORT"] == "9100"


def test_nginx_proxies_to_the_edges_of_the_stack() -> None:
    config = (COMPOSE / "nginx.conf").read_text()
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in SERVICES["nginx"]["volumes"]
    for name in ("edge-1", "edge-2"):
        assert f"server {name}:8000 " in config
    assert "listen 8080;" in config
    assert any(p.endswith(":8080") for p in SERVICES["nginx"]["ports"])
    for forbidden in ("$request_uri", "$request ", "$args", "$query_string", "$http_referer"):
        assert forbidden not in config.split("log_format", 1)[1].split(";", 1)[0]


def test_rabbitmq_loads_the_generated_definitions_with_its_plugins() -> None:
    rabbitmq = SERVICES["rabbitmq"]
    volumes = rabbitmq["volumes"]
    assert "./rabbitmq/definitions.json:/etc/rabbitmq/definitions.json:ro" in volumes
    assert "./rabbitmq/enabled_plugins:/etc/rabbitmq/enabled_plugins:ro" in volumes
    plugins = (COMPOSE / "rabbitmq" / "enabled_plugins").read_text()
    assert "rabbitmq_management" in plugins and "rabbitmq_prometheus" in plugins
    conf = (COMPOSE / "rabbitmq" / "rabbitmq.conf").read_text()
    assert "definitions.local.path = /etc/rabbitmq/definitions.json" in conf
    # The processes connect as the user of the definitions (no default user is created).
    user = json.loads((COMPOSE / "rabbitmq" / "definitions.json").read_text())["users"][0]
    anchor = SPEC["x-notify-env"]["AMQP_URL"]
    assert anchor.startswith(f"amqp://{user['name']}:"), anchor


@pytest.mark.parametrize("name", sorted(set(SERVICES) - set(MONITORING)))
def test_the_files_a_service_mounts_are_in_the_repository(name: str) -> None:
    for path in mounts(SERVICES[name]):
        assert path.exists(), f"{name} mounts {path.relative_to(ROOT)}, which does not exist"


@pytest.mark.parametrize("name", MONITORING)
def test_the_monitoring_profile_mounts_files_of_the_repository(name: str) -> None:
    paths = mounts(SERVICES[name])
    assert paths, name
    missing = [str(p.relative_to(ROOT)) for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"not in the repository yet (the monitoring configuration): {missing}")


def test_the_image_builds_from_the_repository() -> None:
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"the Dockerfile copies {source}: missing"


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


def test_docker_compose_accepts_the_file() -> None:
    if not _compose_plugin():
        pytest.skip("the docker command has no compose plugin here")
    env = {**os.environ, "AUTH_JWT_SECRET": "x" * 8}
    for profile in ([], ["--profile", "monitoring"]):
        checked = subprocess.run(
            ["docker", "compose", "-f", str(FILE), *profile, "config", "--quiet"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stderr
