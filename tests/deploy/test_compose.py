"""docker-compose.yml: valid for Debian's ``docker-compose`` and for the Compose Specification's JSON schema
(vendored in ``compose-spec/``, used offline), with the services, ports, health checks and start order the
README promises, and commands the image can run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.main import get_command

from tests.debian import ensure_debian_tool
from twin_service import webstack
from twin_service.cli import app as cli_app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).parent / "compose-spec" / "compose-spec.json"


@pytest.fixture(scope="module")
def resolved() -> dict:
    """``docker-compose config``: the file as Compose reads it, with the variables set."""
    compose = ensure_debian_tool("docker-compose", "docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env |= {"TWIN_API_KEY": "s3cret", "TWIN_SCENARIO": "rural", "TWIN_SPEED": "max", "TWIN_API_PORT": "18000",
            "TWIN_DATA_DIR": "/srv/twin-data"}  # fmt: skip
    done = subprocess.run(
        [compose, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


CLUSTER_SERVICES = {"cluster-node-1", "cluster-node-2", "cluster-node-3", "cluster-init", "bridge-city", "bridge-rural",
                    "cluster-api"}  # fmt: skip
"""``docker compose --profile cluster``: a 3-node Redis Cluster, formed once, two city bridges and an API."""


def _default_stack(resolved: dict) -> dict:
    """The services ``docker compose up`` starts: those of no profile."""
    return {name: s for name, s in resolved["services"].items() if not s.get("profiles")}


def test_docker_compose_accepts_the_file_with_its_services(resolved: dict):
    services = _default_stack(resolved)
    assert set(services) == {"redis", "api", "bridge"}
    assert {n for n, s in resolved["services"].items() if s.get("profiles") == ["cluster"]} == CLUSTER_SERVICES
    assert services["redis"]["image"].split(":")[0] == "redis"  # the official image
    assert services["api"]["image"] == services["bridge"]["image"]  # one image, built once
    ports = {
        name: [(int(p["published"]), int(p["target"])) for p in s.get("ports", [])] for name, s in services.items()
    }
    assert ports == {"redis": [], "api": [(18000, 8000)], "bridge": [(6080, 6080)]}


def test_every_service_has_a_health_check_and_starts_after_what_it_needs(resolved: dict):
    services = _default_stack(resolved)
    tests = {name: " ".join(s["healthcheck"]["test"]) for name, s in services.items()}
    assert tests["redis"] == "CMD redis-cli ping"
    assert "http://127.0.0.1:8000/v1/health" in tests["api"]
    assert tests["bridge"].startswith("CMD python -m twin_service.webstack check")
    depends = {name: s.get("depends_on", {}) for name, s in services.items()}
    assert depends["redis"] == {}
    assert depends["api"] == {"redis": {"condition": "service_healthy"}}
    assert depends["bridge"] == {"redis": {"condition": "service_healthy"}, "api": {"condition": "service_healthy"}}


def test_settings_pass_through(resolved: dict):
    api, bridge = resolved["services"]["api"]["environment"], resolved["services"]["bridge"]["environment"]
    assert api["TWIN_API_KEY"] == bridge["TWIN_API_KEY"] == "s3cret"
    assert api["TWIN_REDIS_URL"] == bridge["TWIN_REDIS_URL"] == "redis://redis:6379/0"
    assert (bridge["TWIN_SCENARIO"], bridge["TWIN_SPEED"]) == ("rural", "max")


def test_an_imported_city_is_at_the_same_path_in_bridge_and_api(resolved: dict):
    """The bridge runs TWIN_SCENARIO (its sumocfg names the original files by absolute path) and the api reads the
    run's params.toml at the path the bridge gives: TWIN_DATA_DIR is mounted at that same path in both."""
    for name in ("api", "bridge"):
        (volume,) = resolved["services"][name]["volumes"]
        mount = [volume["source"], volume["target"]] if isinstance(volume, dict) else volume.split(":")[:2]
        assert mount == ["/srv/twin-data", "/srv/twin-data"], (name, volume)
        assert resolved["services"][name]["environment"]["TWIN_DATA_DIR"] == "/srv/twin-data"  # and their data folder


def test_the_file_follows_the_compose_specification_schema():
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    document = yaml.safe_load(COMPOSE.read_text())
    assert [e.message for e in validator.iter_errors(document)] == []
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["bridge"]["depends_on"]["api"]["condition"] = "service_happy"
    broken["services"]["api"]["healthcheck"]["interval"] = 10
    assert len(list(validator.iter_errors(broken))) == 2  # the schema does catch what it should


def test_the_commands_are_ones_the_image_runs():
    """Each service's command and health check parse with the project's own command lines."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    api = services["api"]["command"]
    assert api[0] == "twin-service"
    cli = get_command(cli_app)
    cli.make_context("twin-service", list(api[1:]))  # raises on an unknown option
    bridge = services["bridge"]["command"]
    assert bridge[:3] == ["python", "-m", "twin_service.webstack"]
    args, rest = webstack._parser().parse_known_args(bridge[3:])
    run = webstack.run_command(args, rest)
    assert run[:3] == [sys.executable, "-m", "twin_service.cli"] and "--decisions" in run
    cli.make_context("twin-service", run[3:])
    check = services["bridge"]["healthcheck"]["test"]
    assert webstack._parser().parse_args(check[4:]).command == "check"
    compile(services["api"]["healthcheck"]["test"][3], "<api healthcheck>", "exec")


def test_published_container_ports_are_the_images(resolved: dict):
    exposed = {
        int(p)
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("EXPOSE")
        for p in line.split()[1:]
    }
    targets = {int(p["target"]) for s in resolved["services"].values() for p in s.get("ports", [])}
    assert targets == exposed == {8000, 6080}


def test_the_api_serves_the_committed_trained_models():
    """The api service names trained policies and a predictor; each is in models/ and loads for the city."""
    from twin_service.config import load_params, resolve_scenario
    from twin_service.policies import migration_policy, offload_policy
    from twin_service.policies.registry import ModelRegistry
    from twin_service.predict.registry import load_forecaster

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    default = lambda value: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)  # noqa: E731 (Compose's ${VAR:-default})
    api = [default(v) for v in services["api"]["command"]]
    options = dict(zip(api[2::2], api[3::2], strict=False))
    params = load_params(resolve_scenario("city") / "params.toml")
    migration = options["--migration-policy"]
    offload = options["--offload-policy"]
    predictor = options["--predictor"]
    models = ROOT / "models"  # what the image copies
    for name in (migration, offload, predictor):
        assert (models / name / "manifest.json").is_file(), name
    registry = ModelRegistry(models)
    hosting = migration_policy(migration, task=params.task, param_hash=params.param_hash, registry=registry)
    assert hosting.name == migration
    assert (
        offload_policy(offload, offload=params.offload, param_hash=params.param_hash, registry=registry).name == offload
    )
    assert load_forecaster(predictor, params, models).name == predictor
    bridge = [default(v) for v in services["bridge"]["command"]]  # its local fallback decides with the same policies
    assert [bridge[bridge.index(k) + 1] for k in ("--migration-policy", "--offload-policy", "--predictor")] == [
        migration,
        offload,
        predictor,
    ]


def test_the_cluster_profile_forms_a_cluster_and_runs_two_cities_on_it(resolved: dict):
    services = resolved["services"]
    nodes = [services[f"cluster-node-{k}"] for k in (1, 2, 3)]
    for node in nodes:
        assert node["image"].split(":")[0] == "redis"
        command = node["command"]
        assert command[0] == "redis-server" and command[command.index("--cluster-enabled") + 1] == "yes"
        assert " ".join(node["healthcheck"]["test"]) == "CMD redis-cli ping"
    init = services["cluster-init"]
    assert init["depends_on"] == {f"cluster-node-{k}": {"condition": "service_healthy"} for k in (1, 2, 3)}
    script = init["command"][0]
    assert "redis-cli --cluster create" in script and "--cluster-replicas 0" in script
    assert all(f"cluster-node-{k}" in script for k in (1, 2, 3))
    checked = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr

    cli = get_command(cli_app)
    prefixes = {}
    for name in ("bridge-city", "bridge-rural", "cluster-api"):
        service = services[name]
        assert service["image"] == services["api"]["image"]  # the one image
        assert service["depends_on"] == {"cluster-init": {"condition": "service_completed_successfully"}}
        env = service["environment"]
        assert env["TWIN_REDIS_CLUSTER"] == "1" and env["TWIN_REDIS_URL"] == "redis://cluster-node-1:6379"
        command = service["command"]
        assert command[0] == "twin-service"
        cli.make_context("twin-service", list(command[1:]))  # raises on an unknown option
        if name.startswith("bridge-"):
            assert command[1] == "run" and "--gui" not in command
            prefixes[name] = command[command.index("--key-prefix") + 1]
    assert prefixes == {"bridge-city": "city", "bridge-rural": "rural"}
    api = services["cluster-api"]
    assert api["command"][1] == "api" and "--redis-cluster" in api["command"]
    assert api["environment"]["TWIN_KEY_PREFIX"] == "city"  # served by default; rural with ?city=rural
    assert [(int(p["published"]), int(p["target"])) for p in api["ports"]] == [(8001, 8000)]
    assert "http://127.0.0.1:8000/v1/health" in " ".join(api["healthcheck"]["test"])
