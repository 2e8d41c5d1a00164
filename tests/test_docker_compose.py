"""docker-compose.yml and the Dockerfile stay runnable: healthchecks, defaults, DESIGN's services.

No Docker engine runs here, so the files are parsed and checked, not started. Each check is a
function returning the problems it found; the tests run it on the real files and on mutated
copies, so a check that could never fail would show up as a failing mutation test.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# `$$` is compose's escape for a literal `$`; `${NAME:-x}` / `${NAME-x}` carry a default.
_ESCAPED_DOLLAR = re.compile(r"\$\$")
_WITH_DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-[^}]*\}")
_ANY_REFERENCE = re.compile(r"\$(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")

Compose = dict[str, Any]


def load_compose() -> Compose:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict), "docker-compose.yml must be a mapping"
    return loaded


def as_argv(command: str | list[Any] | None) -> list[str]:
    """A compose command/entrypoint/healthcheck test in either form, as an argument list."""
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    return [str(part) for part in command]


def one_shot_jobs(compose: Compose) -> set[str]:
    """Services that run to completion: `restart: "no"`, and every dependent waits for
    `service_completed_successfully`. Such jobs have nothing to health-check."""
    services = compose["services"]
    waited_for: dict[str, set[str]] = {}
    for service in services.values():
        for target, condition in depends_on_conditions(service).items():
            waited_for.setdefault(target, set()).add(condition)
    return {
        name
        for name, service in services.items()
        if str(service.get("restart", "")) == "no"
        and waited_for.get(name) == {"service_completed_successfully"}
    }


def depends_on_conditions(service: dict[str, Any]) -> dict[str, str]:
    """depends_on in either form, as target -> condition (short form: service_started)."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {
        target: (spec or {}).get("condition", "service_started") for target, spec in depends.items()
    }


def healthcheck_problems(compose: Compose) -> list[str]:
    problems = []
    exempt = one_shot_jobs(compose)
    for name, service in compose["services"].items():
        if name in exempt:
            continue
        check = service.get("healthcheck")
        if not check or check.get("disable"):
            problems.append(f"{name}: no healthcheck")
            continue
        argv = as_argv(check.get("test"))
        if not argv or argv[0] == "NONE" or (argv[0] in ("CMD", "CMD-SHELL") and len(argv) < 2):
            problems.append(f"{name}: healthcheck has no test command")
    return problems


def variable_problems(text: str) -> list[str]:
    """Every variable reference of the raw file that has no default."""
    unescaped = _ESCAPED_DOLLAR.sub("", text)
    problems = []
    for match in _ANY_REFERENCE.finditer(unescaped):
        if not _WITH_DEFAULT.fullmatch(match.group(0)):
            problems.append(f"{match.group(0)} has no default (write ${{NAME:-value}})")
    return problems


def depends_on_problems(compose: Compose) -> list[str]:
    services = compose["services"]
    problems = []
    for name, service in services.items():
        for target, condition in depends_on_conditions(service).items():
            if target not in services:
                problems.append(f"{name}: depends on unknown service {target}")
            elif condition == "service_healthy" and "healthcheck" not in services[target]:
                problems.append(f"{name}: waits for {target} to be healthy; it has no healthcheck")
    return problems


def published_port_problems(compose: Compose) -> list[str]:
    """Every service publishes its ports on the host's loopback only (the brokers, the
    databases and the object store have default credentials or none; the worker's API can
    pause and restart pipelines), and the worker gets the API token."""
    problems = []
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            if isinstance(port, str):
                spec = port
            else:
                spec = f"{port.get('host_ip', '')}:{port['published']}"
            if not str(spec).startswith("127.0.0.1:"):
                problems.append(f"{name}: {spec} is published beyond 127.0.0.1")
    worker = compose["services"]["worker"]
    if "OMCONNECT_API_TOKEN" not in (worker.get("environment") or {}):
        problems.append("worker: OMCONNECT_API_TOKEN is not passed on")
    return problems


def find_service(compose: Compose, image_words: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    for name, service in compose["services"].items():
        image = str(service.get("image", ""))
        if any(word in image or word == name for word in image_words):
            return name, service
    raise AssertionError(f"no service runs any of {image_words}")


def test_every_service_has_a_healthcheck() -> None:
    assert healthcheck_problems(load_compose()) == []


def test_removing_a_healthcheck_is_caught() -> None:
    compose = load_compose()
    for name in ("postgres", "worker", "mosquitto"):
        mutated = copy.deepcopy(compose)
        del mutated["services"][name]["healthcheck"]
        assert healthcheck_problems(mutated) == [f"{name}: no healthcheck"]
    emptied = copy.deepcopy(compose)
    emptied["services"]["nats"]["healthcheck"]["test"] = ["CMD"]
    assert healthcheck_problems(emptied) == ["nats: healthcheck has no test command"]


def test_a_one_shot_job_is_exempt_only_while_dependents_wait_for_completion() -> None:
    compose = load_compose()
    assert one_shot_jobs(compose) == {"minio-init"}
    mutated = copy.deepcopy(compose)
    mutated["services"]["worker"]["depends_on"]["minio-init"]["condition"] = "service_started"
    assert healthcheck_problems(mutated) == ["minio-init: no healthcheck"]


def test_every_variable_has_a_default() -> None:
    assert variable_problems(COMPOSE_FILE.read_text()) == []


@pytest.mark.parametrize(
    ("snippet", "bad"),
    [
        ("image: x:${TAG}", True),
        ("image: x:${TAG:?set TAG}", True),
        ("image: x:$TAG", True),
        ("image: x:${TAG:-1}", False),
        ("image: x:${TAG-1}", False),
        ("test: echo $${TAG}", False),
        ("test: echo $$TAG", False),
    ],
)
def test_variable_check_on_snippets(snippet: str, bad: bool) -> None:
    assert bool(variable_problems(snippet)) is bad


def test_depends_on_targets_exist_and_are_health_checked() -> None:
    compose = load_compose()
    assert depends_on_problems(compose) == []
    mutated = copy.deepcopy(compose)
    mutated["services"]["worker"]["depends_on"]["kafka"] = {"condition": "service_healthy"}
    assert depends_on_problems(mutated) == ["worker: depends on unknown service kafka"]


def test_postgres_is_ready_for_logical_replication() -> None:
    _, postgres = find_service(load_compose(), ("postgres:",))
    assert str(postgres["image"]).startswith("postgres:17")
    argv = " ".join(as_argv(postgres["command"]))
    for setting in ("wal_level=logical", "max_replication_slots=", "max_wal_senders="):
        assert setting in argv
    assert "pg_isready" in " ".join(as_argv(postgres["healthcheck"]["test"]))
    init_mounts = [v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert init_mounts, "postgres needs its init SQL mounted"
    init_dir = ROOT / init_mounts[0].split(":")[0]
    assert list(init_dir.glob("*.sql")), f"no init SQL in {init_dir}"


def test_kafka_protocol_broker_has_internal_and_external_listeners() -> None:
    _, broker = find_service(load_compose(), ("redpanda", "kafka"))
    argv = " ".join(as_argv(broker["command"]))
    assert "internal://" in argv and "external://" in argv
    assert "rpk cluster health" in " ".join(as_argv(broker["healthcheck"]["test"]))


def test_s3_nats_and_mosquitto_are_present() -> None:
    compose = load_compose()
    find_service(compose, ("minio/minio", "moto"))
    _, nats = find_service(compose, ("nats:",))
    assert "-js" in as_argv(nats["command"])
    assert "8222" in " ".join(as_argv(nats["healthcheck"]["test"]))
    _, mosquitto = find_service(compose, ("eclipse-mosquitto",))
    conf_mount = next(v for v in mosquitto["volumes"] if v.endswith("mosquitto.conf:ro"))
    conf = (ROOT / conf_mount.split(":")[0]).read_text().splitlines()
    assert "listener 1883" in conf and "allow_anonymous true" in conf


def test_worker_is_built_here_serves_pipelines_and_waits_for_every_service() -> None:
    compose = load_compose()
    worker = compose["services"]["worker"]
    build = worker["build"]
    assert (build if isinstance(build, str) else build["context"]) == "."
    command = as_argv(worker["command"])
    assert command[:2] == ["serve", "pipelines/"]
    assert command[command.index("--host") + 1] == "0.0.0.0", "the API must be reachable"
    assert any(v.startswith("./pipelines:/var/lib/omconnect/pipelines") for v in worker["volumes"])
    assert "/health" in " ".join(as_argv(worker["healthcheck"]["test"]))
    waits = depends_on_conditions(worker)
    others = {
        name
        for name, service in compose["services"].items()
        if name != "worker" and not service.get("profiles")
    }
    assert set(waits) == others
    for target, condition in waits.items():
        expected = (
            "service_completed_successfully"
            if target in one_shot_jobs(compose)
            else "service_healthy"
        )
        assert condition == expected, target


def test_every_port_is_published_on_loopback_only_and_the_api_given_its_token() -> None:
    compose = load_compose()
    assert published_port_problems(compose) == []
    assert compose["services"]["worker"]["ports"] == ["127.0.0.1:${OMCONNECT_HTTP_PORT:-8083}:8083"]
    for exposed in ("${OMCONNECT_HTTP_PORT:-8083}:8083", "0.0.0.0:8083:8083", "8083"):
        mutated = copy.deepcopy(compose)
        mutated["services"]["worker"]["ports"] = [exposed]
        assert published_port_problems(mutated) == [
            f"worker: {exposed} is published beyond 127.0.0.1"
        ]
    mutated = copy.deepcopy(compose)
    mutated["services"]["postgres"]["ports"] = ["5432:5432"]
    assert published_port_problems(mutated) == ["postgres: 5432:5432 is published beyond 127.0.0.1"]
    long_form = copy.deepcopy(compose)
    long_form["services"]["worker"]["ports"] = [{"target": 8083, "published": "8083"}]
    assert published_port_problems(long_form) == ["worker: :8083 is published beyond 127.0.0.1"]
    del long_form["services"]["worker"]["environment"]["OMCONNECT_API_TOKEN"]
    assert "worker: OMCONNECT_API_TOKEN is not passed on" in published_port_problems(long_form)


def test_bind_mounted_deploy_files_exist() -> None:
    for name, service in load_compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./deploy"):
                assert (ROOT / source).exists(), f"{name}: {source} is missing"


def test_orchestrators_are_optional_profiles() -> None:
    services = load_compose()["services"]
    for name in ("airflow", "dagster"):
        if name in services:
            assert services[name].get("profiles"), f"{name} must sit behind a profile"


def test_dockerfile_builds_a_non_root_worker_that_serves() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    assert any(re.match(r"RUN pip install \"?\.\[", line) for line in instructions)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["omconnect"]' in instructions
    cmd = [line for line in instructions if line.startswith("CMD ")]
    assert cmd and yaml.safe_load(cmd[-1][4:])[0] == "serve"
