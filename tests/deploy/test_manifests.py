"""The deployment artifacts in deploy/, checked offline (no Docker daemon, no cluster).

- Every YAML parses; every Kubernetes resource validates against the official schemas of
  Kubernetes ``KUBERNETES_VERSION`` (kubernetes-validate, strict: unknown fields fail); the
  KEDA ScaledObject, a custom resource those schemas do not know, is checked field by
  field; compose.yaml validates against the Compose Specification's JSON schema (the copy
  check-jsonschema ships, so no download at test time).
- Every command names a module of this repository, and every subcommand one its
  ``__main__`` declares; every environment variable is a field of the settings class of
  the process it is given to, and those settings load from exactly that environment.
- Probes, ports, replicas, grace periods and security settings agree with the code and
  with each other; the image ships every package the processes import.
"""

from __future__ import annotations

import ast
import base64
import copy
import fnmatch
import importlib.resources
import importlib.util
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic_settings import BaseSettings

from api.admin import create_admin_app
from api.app import create_app
from api.settings import ServerSettings, Settings
from audit.settings import AuditSettings
from fraud.settings import FraudSettings
from harness.kafka.compose_secrets import broker_properties, write_compose_secrets
from messaging import KafkaConnection
from provisioning.acls import ADMIN, API, AUDIT, FRAUD, LAG_READER, PRINCIPALS, WORKER
from provisioning.specs import ProvisioningSettings
from schemas import topics
from worker.probes import ProbeServer
from worker.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
KUBERNETES_VERSION = "1.33"  # one kubernetes-validate bundles; a release clusters run now
IMAGE_NAME = "device-binding"  # what the compose services built from deploy/Dockerfile use

# What each process reads its environment into, by the module `python -m` runs.
SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "api": (Settings, ServerSettings),
    "worker": (WorkerSettings,),
    "audit": (AuditSettings,),
    "fraud": (FraudSettings,),
    "provisioning": (ProvisioningSettings,),
}
# The subcommands the deployments run, besides each process's default: the one-shot
# migration steps. Each must be declared by its package's __main__.
SUBCOMMANDS_USED_BY_DEPLOYMENTS = {("worker", "migrate"), ("audit", "migrate")}
# Variables read by libraries rather than by a settings class (OpenTelemetry's exporter).
LIBRARY_VARIABLES = re.compile(r"^OTEL_[A-Z0-9_]+$")
# Every process's Kafka connection settings (messaging/connection.py, prefix KAFKA_).
CONNECTION_VARIABLES = {f"KAFKA_{name.upper()}" for name in KafkaConnection.model_fields}
# The Kafka principal each process logs in as (provisioning/acls.py).
PRINCIPAL_OF = {"api": API, "worker": WORKER, "audit": AUDIT, "fraud": FRAUD, "provisioning": ADMIN}
KAFKA_CA_SECRET = "device-binding-kafka-ca"
CONNECTION_FILES = {name.lower() for name in CONNECTION_VARIABLES}

# The probe contract (the ports are the settings' defaults, checked below).
API_PORT = 8000
API_ADMIN_PORT = 8010  # the API's probes and metrics, never exposed with the API
WORKER_PORT = 8001
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"


def load_documents(path: Path) -> list[dict[str, Any]]:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert documents, f"{path} holds no document"
    assert all(isinstance(doc, dict) for doc in documents), path
    return documents


def k8s_files() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


def k8s_resources() -> list[dict[str, Any]]:
    return [doc for path in k8s_files() for doc in load_documents(path)]


def resource_id(resource: dict[str, Any]) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [r for r in k8s_resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def workloads() -> list[dict[str, Any]]:
    return [r for r in k8s_resources() if r["kind"] in ("Deployment", "Job")]


def compose() -> dict[str, Any]:
    (document,) = load_documents(COMPOSE)
    return document


def our_services() -> dict[str, dict[str, Any]]:
    """The compose services running this repository's image."""
    services: dict[str, dict[str, Any]] = compose()["services"]
    return {
        name: service
        for name, service in services.items()
        if str(service.get("image", "")).split(":")[0] == IMAGE_NAME
    }


@dataclass(frozen=True)
class Process:
    """One container or compose service running this repository's image."""

    where: str
    command: list[str]
    environment: dict[str, str]

    @property
    def module(self) -> str:
        assert self.command[:2] == ["python", "-m"], f"{self.where}: {self.command}"
        return self.command[2]

    @property
    def arguments(self) -> list[str]:
        return self.command[3:]


def _env_value(value: Any) -> str:
    # As compose passes them: booleans in lower case.
    return str(value).lower() if isinstance(value, bool) else str(value)


def k8s_processes() -> list[Process]:
    data: dict[tuple[str, str], dict[str, str]] = {}
    for resource in k8s_resources():
        if resource["kind"] in ("ConfigMap", "Secret"):
            values = {**resource.get("data", {}), **resource.get("stringData", {})}
            data[resource["kind"], resource["metadata"]["name"]] = values
    processes = []
    for workload in workloads():
        spec = pod_spec(workload)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            environment: dict[str, str] = {}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    environment |= data["ConfigMap", source["configMapRef"]["name"]]
                else:
                    environment |= data["Secret", source["secretRef"]["name"]]
            for variable in container.get("env", []):
                environment[variable["name"]] = variable.get("value", "(from a reference)")
            where = f"{resource_id(workload)}/{container['name']}"
            processes.append(Process(where, container["command"], environment))
    return processes


def compose_processes() -> list[Process]:
    processes = []
    for name, service in our_services().items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: environment as a map, please"
        variables = {key: _env_value(value) for key, value in environment.items()}
        # A secret mounted as /run/secrets/<variable in lower case> is read as that variable
        # (messaging/connection.py).
        for secret in service.get("secrets", []):
            if secret["target"] in CONNECTION_FILES:
                variables[secret["target"].upper()] = "(from a secret file)"
        processes.append(Process(f"compose/{name}", service["command"], variables))
    return processes


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments), continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    environment = {}
    for keyword, arguments in dockerfile_final_stage():
        if keyword == "ENV":
            for pair in arguments.split():
                name, _, value = pair.partition("=")
                environment[name] = value
    return environment


def dockerfile_cmd() -> list[str]:
    commands = [json.loads(args) for keyword, args in dockerfile_final_stage() if keyword == "CMD"]
    assert len(commands) == 1, "one CMD, in exec (JSON) form"
    command: list[str] = commands[0]
    return command


def all_processes() -> list[Process]:
    image = Process("Dockerfile CMD", dockerfile_cmd(), {})
    return [*k8s_processes(), *compose_processes(), image]


def declared_arguments(module: str) -> set[str]:
    """Subcommand names and options the module's argument parser declares, read from its
    source (so a subcommand another change is adding counts as soon as it lands)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None, module
    assert spec.origin is not None, module
    origin = Path(spec.origin)
    source = origin.parent / "__main__.py" if origin.name == "__init__.py" else origin
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        literals = [arg.value for arg in node.args if isinstance(arg, ast.Constant)]
        if node.func.attr in ("add_parser", "add_argument"):
            names.update(value for value in literals if isinstance(value, str))
        for keyword in node.keywords:
            if keyword.arg == "choices" and isinstance(keyword.value, ast.List | ast.Tuple):
                names.update(
                    element.value
                    for element in keyword.value.elts
                    if isinstance(element, ast.Constant) and isinstance(element.value, str)
                )
    return names


def probe(container: dict[str, Any], kind: str) -> tuple[str, int]:
    """The path and the port number a container's probe of ``kind`` asks."""
    action = container[kind]["httpGet"]
    port = action["port"]
    if isinstance(port, str):
        (port,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return action["path"], port


def container_of(kind: str, name: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec(find(kind, name))["containers"]
    assert len(containers) == 1, f"{kind}/{name}"
    return containers[0]


# --- parsing and schemas ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted(DEPLOY.rglob("*.yaml")), ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_every_yaml_parses(path: Path) -> None:
    load_documents(path)


@pytest.mark.parametrize("resource", k8s_resources(), ids=resource_id)
def test_kubernetes_resources_match_the_official_schemas(resource: dict[str, Any]) -> None:
    if resource["apiVersion"].startswith("keda.sh/"):
        return  # a custom resource: test_scaled_object_scales_the_workers_on_their_lag
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_schemas_refuse_a_misspelt_field() -> None:
    # The check above is worth something only if it can fail: a misspelt field is at best a
    # warning from kubectl, and the pod then runs without the probe.
    deployment = copy.deepcopy(find("Deployment", "device-binding-worker"))
    container = pod_spec(deployment)["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def compose_schema_validator() -> jsonschema.Draft202012Validator:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendored.joinpath("compose-spec.json").read_text())
    assert schema["$schema"].endswith("/draft/2020-12/schema")
    return jsonschema.Draft202012Validator(schema)


def test_compose_matches_the_compose_specification() -> None:
    errors = list(compose_schema_validator().iter_errors(compose()))
    assert not errors, [f"{e.json_path}: {e.message}" for e in errors]


def test_the_compose_schema_refuses_a_misspelt_condition() -> None:
    broken = compose()
    broken["services"]["worker"]["depends_on"]["migrate"]["condition"] = "service_completed"
    assert list(compose_schema_validator().iter_errors(broken))


def test_kustomization_lists_every_manifest_once() -> None:
    (kustomization,) = load_documents(K8S / "kustomization.yaml")
    resources = kustomization["resources"]
    assert sorted(resources) == sorted(path.name for path in k8s_files())
    assert len(set(resources)) == len(resources)
    (namespace,) = [r for r in k8s_resources() if r["kind"] == "Namespace"]
    assert kustomization["namespace"] == namespace["metadata"]["name"]
    for resource in k8s_resources():
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == namespace["metadata"]["name"]
    # The image override applies to every container (same repository, no tag drift).
    (image,) = kustomization["images"]
    for workload in workloads():
        for container in pod_spec(workload)["containers"]:
            assert container["image"] == f"{image['name']}:{image['newTag']}"


# --- entry points and settings -------------------------------------------------------


@pytest.mark.parametrize("process", all_processes(), ids=lambda p: p.where)
def test_every_command_runs_a_module_of_this_repository(process: Process) -> None:
    spec = importlib.util.find_spec(process.module)
    assert spec is not None, f"{process.where}: no module {process.module}"
    assert spec.origin is not None
    assert Path(spec.origin).is_relative_to(REPO)
    assert process.module in SETTINGS, f"{process.where}: add {process.module} to SETTINGS"
    declared = declared_arguments(process.module)
    for argument in process.arguments:
        assert argument in declared, f"{process.where}: {process.module} has no {argument}"
        if not argument.startswith("-"):
            assert (process.module, argument) in SUBCOMMANDS_USED_BY_DEPLOYMENTS


def test_the_migration_steps_are_deployed() -> None:
    used = {
        (process.module, process.arguments[0])
        for process in all_processes()
        if process.arguments and not process.arguments[0].startswith("-")
    }
    assert used == SUBCOMMANDS_USED_BY_DEPLOYMENTS
    for module, subcommand in SUBCOMMANDS_USED_BY_DEPLOYMENTS:
        assert subcommand in declared_arguments(module), f"python -m {module} {subcommand}"


@pytest.mark.parametrize("process", [*k8s_processes(), *compose_processes()], ids=lambda p: p.where)
def test_every_variable_is_a_setting_of_its_process_and_they_load(
    process: Process, monkeypatch: pytest.MonkeyPatch
) -> None:
    classes = SETTINGS[process.module]
    fields = {name.upper() for cls in classes for name in cls.model_fields}
    fields |= CONNECTION_VARIABLES
    unknown = sorted(
        name
        for name in process.environment
        if name not in fields and not LIBRARY_VARIABLES.match(name)
    )
    assert not unknown, f"{process.where}: not settings of {process.module}: {unknown}"
    # Exactly this environment, as the process would read it: required settings present,
    # values valid (a boolean, a URL, TOPIC_MIN_INSYNC_REPLICAS below the replicas, ...).
    for group in SETTINGS.values():
        for cls in group:
            for name in cls.model_fields:
                monkeypatch.delenv(name.upper(), raising=False)
    for name in CONNECTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in process.environment.items():
        monkeypatch.setenv(name, value)
    for cls in classes:
        cls()
    KafkaConnection().check()


def test_the_databases_are_separate_and_postgresql() -> None:
    for processes in (k8s_processes(), compose_processes()):
        urls = {
            key: process.environment[key]
            for process in processes
            for key in ("DATABASE_URL", "AUDIT_DATABASE_URL")
            if key in process.environment
        }
        assert set(urls) == {"DATABASE_URL", "AUDIT_DATABASE_URL"}
        service, audit = (urlsplit(urls[key]) for key in ("DATABASE_URL", "AUDIT_DATABASE_URL"))
        assert service.scheme == audit.scheme == "postgresql+asyncpg"
        assert (service.hostname, service.path) != (audit.hostname, audit.path)
        assert service.username != audit.username  # the service cannot write the trail


def test_deployed_processes_leave_the_topics_to_the_provisioning_step() -> None:
    for process in [*k8s_processes(), *compose_processes()]:
        if process.module in ("worker", "fraud") and not process.arguments:
            assert process.environment.get("PROVISION_TOPICS") == "false", process.where
    (job,) = [p for p in k8s_processes() if p.module == "provisioning"]
    # Production: three replicas, two in sync.
    assert job.environment["TOPIC_REPLICATION_FACTOR"] == "3"
    assert job.environment["TOPIC_MIN_INSYNC_REPLICAS"] == "2"
    (service,) = [p for p in compose_processes() if p.module == "provisioning"]
    # One broker in compose: one replica, one in sync.
    assert service.environment["TOPIC_REPLICATION_FACTOR"] == "1"
    assert service.environment["TOPIC_MIN_INSYNC_REPLICAS"] == "1"


# --- probes and ports ----------------------------------------------------------------


def test_the_settings_defaults_are_the_probed_ports() -> None:
    assert ServerSettings.model_fields["api_port"].default == API_PORT
    assert ServerSettings.model_fields["api_admin_port"].default == API_ADMIN_PORT
    assert WorkerSettings.model_fields["worker_http_port"].default == WORKER_PORT
    # The image listens on every interface (the code's default is loopback).
    environment = dockerfile_env()
    assert environment["API_HOST"] == environment["WORKER_HTTP_HOST"] == "0.0.0.0"  # noqa: S104
    assert environment["API_PORT"] == str(API_PORT)
    assert environment["WORKER_HTTP_PORT"] == str(WORKER_PORT)
    assert "API_ADMIN_PORT" not in environment  # the default, as the probes expect
    (exposed,) = [args for keyword, args in dockerfile_final_stage() if keyword == "EXPOSE"]
    assert set(exposed.split()) == {str(API_PORT), str(API_ADMIN_PORT), str(WORKER_PORT)}


def test_kubernetes_probes_ask_the_health_endpoints() -> None:
    api = container_of("Deployment", "device-binding-api")
    worker = container_of("Deployment", "device-binding-worker")
    for container, port in ((api, API_ADMIN_PORT), (worker, WORKER_PORT)):
        assert probe(container, "livenessProbe") == (LIVENESS_PATH, port)
        assert probe(container, "readinessProbe") == (READINESS_PATH, port)
        assert probe(container, "startupProbe") == (LIVENESS_PATH, port)
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert ports == {"http": API_PORT, "admin": API_ADMIN_PORT}
    # The Service reaches the API's port, and only it.
    service = find("Service", "device-binding-api")
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in ("http", API_PORT)
    assert (
        service["spec"]["selector"]
        == find("Deployment", "device-binding-api")["spec"]["selector"]["matchLabels"]
    )
    # Audit and fraud have no port: nothing to probe.
    for name in ("device-binding-audit", "device-binding-fraud"):
        container = container_of("Deployment", name)
        assert "ports" not in container
        assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)


def test_no_service_exposes_the_api_admin_port() -> None:
    for service in [r for r in k8s_resources() if r["kind"] == "Service"]:
        for port in service["spec"]["ports"]:
            assert port["port"] != API_ADMIN_PORT, resource_id(service)
            assert port.get("targetPort") not in ("admin", API_ADMIN_PORT), resource_id(service)
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", resource_id(service)


def test_compose_healthchecks_ask_the_health_endpoints() -> None:
    services = compose()["services"]
    for name, port in (("api", API_ADMIN_PORT), ("worker", WORKER_PORT)):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}{LIVENESS_PATH}" in test, name
    # The API's port is published to this machine's loopback, its admin port is not.
    assert services["api"]["ports"] == [f"127.0.0.1:{API_PORT}:{API_PORT}"]
    assert "expose" not in services["api"]
    for dependency in ("kafka", "postgres"):
        assert services[dependency]["healthcheck"]["test"], dependency


async def test_the_api_serves_the_probed_paths_on_its_admin_app_only() -> None:
    settings = Settings(
        auth_jwks_file=Path("/nonexistent/jwks.json"), auth_issuer="i", auth_audience="a"
    )
    app = create_app(settings)
    # Without its lifespan (no Kafka): a path that exists answers anything but 404.
    admin = httpx.ASGITransport(app=create_admin_app(app), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=admin, base_url="http://admin") as client:
        assert (await client.get(LIVENESS_PATH)).status_code == 200
        for path in (READINESS_PATH, METRICS_PATH):
            assert (await client.get(path)).status_code != 404, path
        assert (await client.get("/no-such-probe")).status_code == 404
    public = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=public, base_url="http://api") as client:
        for path in (LIVENESS_PATH, READINESS_PATH, METRICS_PATH):
            assert (await client.get(path)).status_code == 404, path


async def test_the_worker_serves_the_probed_paths() -> None:
    async def ready() -> str | None:
        return None

    server = ProbeServer("127.0.0.1", 0, ready)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for path in (LIVENESS_PATH, READINESS_PATH, METRICS_PATH):
                assert (await client.get(path)).status_code == 200, path
            assert (await client.get("/no-such-probe")).status_code == 404
    finally:
        await server.stop()


# --- scaling, shutdown and security --------------------------------------------------


def test_replicas() -> None:
    api, worker = (find("Deployment", f"device-binding-{n}") for n in ("api", "worker"))
    # Counted by their autoscalers; a count in the Deployment would reset theirs on apply.
    assert "replicas" not in api["spec"]
    assert "replicas" not in worker["spec"]
    hpa = find("HorizontalPodAutoscaler", "device-binding-api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "device-binding-api",
    }
    assert hpa["spec"]["minReplicas"] == 3 < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # The HPA's utilisation is relative to the request: there must be one.
    assert container_of("Deployment", "device-binding-api")["resources"]["requests"]["cpu"]
    assert find("Deployment", "device-binding-audit")["spec"]["replicas"] == 1
    fraud = find("Deployment", "device-binding-fraud")
    # One reader of every partition, never two, not even during a rollout.
    assert fraud["spec"]["replicas"] == 1
    assert fraud["spec"]["strategy"]["type"] == "Recreate"
    # The worker's two replicas in compose.
    assert compose()["services"]["worker"]["deploy"]["replicas"] == 2


def test_disruption_budgets_cover_the_api_and_the_workers() -> None:
    for name in ("device-binding-api", "device-binding-worker"):
        budget = find("PodDisruptionBudget", name)
        deployment = find("Deployment", name)
        assert budget["spec"]["selector"] == deployment["spec"]["selector"]
        assert budget["spec"]["maxUnavailable"] == 1


def test_scaled_object_scales_the_workers_on_their_lag() -> None:
    scaled = find("ScaledObject", "device-binding-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    # The CRD's required fields and their types.
    assert set(spec) <= {
        "scaleTargetRef",
        "minReplicaCount",
        "maxReplicaCount",
        "pollingInterval",
        "cooldownPeriod",
        "idleReplicaCount",
        "initialCooldownPeriod",
        "advanced",
        "fallback",
        "triggers",
    }
    target = spec["scaleTargetRef"]
    assert target["name"] == "device-binding-worker"
    assert target.get("kind", "Deployment") == "Deployment"
    assert target.get("apiVersion", "apps/v1") == "apps/v1"
    minimum, maximum = spec["minReplicaCount"], spec["maxReplicaCount"]
    assert all(isinstance(n, int) for n in (minimum, maximum, spec["pollingInterval"]))
    assert 3 == minimum <= maximum
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    # KEDA reads trigger metadata as strings only.
    assert all(isinstance(value, str) for value in metadata.values())
    assert metadata["consumerGroup"] == WorkerSettings.model_fields["consumer_group"].default
    assert metadata["topic"] == topics.COMMANDS
    assert int(metadata["lagThreshold"]) > 0
    assert metadata["offsetResetPolicy"] == "earliest"  # as the workers' consumer
    kafka = find("ConfigMap", "device-binding-kafka")["data"]
    assert metadata["bootstrapServers"] == kafka["KAFKA_BOOTSTRAP_SERVERS"]
    # The workers' ConfigMap keeps the group and the topic the trigger measures.
    worker = find("ConfigMap", "device-binding-worker")["data"]
    assert worker.get("CONSUMER_GROUP", metadata["consumerGroup"]) == metadata["consumerGroup"]
    assert worker.get("COMMANDS_TOPIC", metadata["topic"]) == metadata["topic"]
    # A pod is one member of the group; beyond one member per partition, pods idle: the
    # maximum fits the partitions.
    partitions = int(find("ConfigMap", "device-binding-topics")["data"]["TOPIC_PARTITIONS"])
    assert maximum <= partitions


def test_grace_periods_outlast_the_graceful_shutdowns() -> None:
    worker = pod_spec(find("Deployment", "device-binding-worker"))
    grace = int(find("ConfigMap", "device-binding-worker")["data"]["SHUTDOWN_GRACE_SECONDS"])
    # After the commands in flight: commit, close Kafka and the database.
    assert worker["terminationGracePeriodSeconds"] >= grace + 10
    assert int(compose()["services"]["worker"]["stop_grace_period"].rstrip("s")) > int(
        compose()["services"]["worker"]["environment"]["SHUTDOWN_GRACE_SECONDS"]
    )
    api = pod_spec(find("Deployment", "device-binding-api"))
    api_config = find("ConfigMap", "device-binding-api")["data"]
    pause = api["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    in_flight = int(api_config["REPLY_WAIT_SECONDS"]) + int(api_config["PUBLISH_TIMEOUT_SECONDS"])
    assert api["terminationGracePeriodSeconds"] > pause + in_flight


def test_every_pod_runs_unprivileged_as_the_image_user() -> None:
    (user,) = [args for keyword, args in dockerfile_final_stage() if keyword == "USER"]
    uid = int(user.split(":")[0])
    assert uid != 0
    for workload in workloads():
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, resource_id(workload)
        assert spec["securityContext"]["runAsUser"] == uid, resource_id(workload)
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            where = f"{resource_id(workload)}/{container['name']}"
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in context["capabilities"], where
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, where
            # A read-only root: /tmp is the only writable place; a Secret's files (the audit
            # signing key, the Kafka CA) may be mounted read-only.
            mounts = container["volumeMounts"]
            writable = [mount["mountPath"] for mount in mounts if not mount.get("readOnly")]
            assert writable == ["/tmp"], where  # noqa: S108
            volumes = {volume["name"]: volume for volume in spec["volumes"]}
            for mount in mounts:
                if mount.get("readOnly"):
                    assert "secret" in volumes[mount["name"]], where


def test_the_audit_consumer_signs_with_a_key_only_it_reads_and_appends_as_its_own_role() -> None:
    audit = find("Deployment", "device-binding-audit")
    spec = pod_spec(audit)
    (container,) = spec["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "signing-key"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "signing-key"]
    key_file = next(v["value"] for v in container["env"] if v["name"] == "AUDIT_SIGNING_KEY_FILE")
    secret = find("Secret", volume["secret"]["secretName"])
    assert mount["readOnly"] is True
    assert Path(key_file).parent == Path(mount["mountPath"])
    assert Path(key_file).name in secret["stringData"]
    # Readable by the pod's group (its fsGroup) at most, never by others.
    assert volume["secret"]["defaultMode"] & 0o007 == 0
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]
    # The migration runs as the schema's owner, from a Secret the consumer does not mount.
    (migration,) = [
        p for p in k8s_processes() if p.module == "audit" and p.arguments == ["migrate"]
    ]
    (consumer,) = [p for p in k8s_processes() if p.module == "audit" and not p.arguments]
    owner = urlsplit(migration.environment["AUDIT_DATABASE_URL"]).username
    runtime = urlsplit(consumer.environment["AUDIT_DATABASE_URL"]).username
    assert owner != runtime
    assert migration.environment["AUDIT_RUNTIME_ROLE"] == runtime
    assert "AUDIT_RUNTIME_ROLE" not in consumer.environment


def test_placeholder_secrets_are_obviously_placeholders() -> None:
    for resource in k8s_resources():
        if resource["kind"] == "Secret":
            assert "data" not in resource  # stringData only: readable, never real
            for key, value in resource["stringData"].items():
                if key == "username":  # a principal's name is no secret (KEDA reads it here)
                    assert value in PRINCIPALS
                    continue
                assert "REPLACE_ME" in value


def test_compose_start_order() -> None:
    services = compose()["services"]

    def waits_for(name: str) -> dict[str, str]:
        return {dep: c["condition"] for dep, c in services[name]["depends_on"].items()}

    done, healthy = "service_completed_successfully", "service_healthy"
    assert waits_for("topics") == {"kafka": healthy}
    assert waits_for("migrate") == waits_for("migrate-audit") == {"postgres": healthy}
    assert waits_for("worker") == {
        "kafka": healthy,
        "postgres": healthy,
        "migrate": done,
        "topics": done,
    }
    assert waits_for("audit") == {
        "kafka": healthy,
        "postgres": healthy,
        "migrate-audit": done,
        "topics": done,
    }
    assert waits_for("api") == waits_for("fraud") == {"kafka": healthy, "topics": done}
    for one_shot in ("migrate", "migrate-audit", "topics"):
        assert services[one_shot]["restart"] == "no"
    # The API's key set is the mounted development JWKS.
    (mounted,) = services["api"]["configs"]
    assert services["api"]["environment"]["AUTH_JWKS_FILE"] == mounted["target"]
    assert compose()["configs"][mounted["source"]]["file"] == "../var/dev/jwks.json"


def test_compose_kafka_is_a_single_kraft_node_reachable_on_the_network() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    properties = dict(
        line.split("=", 1)
        for line in broker_properties("x").splitlines()
        if line and not line.startswith("#")
    )
    assert set(properties["process.roles"].split(",")) == {"broker", "controller"}
    advertised = dict(
        listener.split("://", 1) for listener in properties["advertised.listeners"].split(",")
    )
    protocols = dict(
        pair.split(":") for pair in properties["listener.security.protocol.map"].split(",")
    )
    # The containers reach the broker at the address it advertises to them, over SASL_SSL.
    for process in compose_processes():
        bootstrap = process.environment.get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap is not None:
            assert bootstrap == advertised["CLIENT"], process.where
            assert process.environment["KAFKA_SECURITY_PROTOCOL"] == protocols["CLIENT"]
    assert protocols["CLIENT"] == protocols["HOST"] == "SASL_SSL"
    # Only the containers' and the host tools' listeners are published: the broker's own
    # (INTERNAL, CONTROLLER) stay inside its container.
    assert kafka["ports"] == [f"127.0.0.1:{advertised['HOST'].rpartition(':')[2]}:29092"]
    assert properties["allow.everyone.if.no.acl.found"] == "false"
    assert properties["super.users"] == "User:broker;User:admin"
    # The storage is formatted with this id: a UUID in Kafka's base64url form.
    cluster_id = kafka["environment"]["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_each_compose_service_logs_in_to_kafka_as_its_own_principal(tmp_path: Path) -> None:
    assert write_compose_secrets(tmp_path)
    files = compose()["secrets"]
    seen = []
    for process in compose_processes():
        if "KAFKA_BOOTSTRAP_SERVERS" not in process.environment:
            continue
        name = process.where.removeprefix("compose/")
        principal = process.environment["KAFKA_SASL_USERNAME"]
        assert principal == PRINCIPAL_OF[process.module], process.where
        mounted = {s["target"]: s["source"] for s in compose()["services"][name]["secrets"]}
        assert mounted["kafka_sasl_password"] == f"kafka-{principal}-password"
        assert process.environment["KAFKA_SSL_CAFILE"] == "/run/secrets/kafka_ca"
        assert mounted["kafka_ca"] == "kafka-ca"
        seen.append(principal)
    assert sorted(seen) == sorted([ADMIN, API, WORKER, AUDIT, FRAUD])
    # Every secret file compose mounts is one the generator writes.
    for secret in files.values():
        path = Path(secret["file"])
        assert path.parent == Path("../var/compose/kafka"), secret
        assert (tmp_path / path.name).is_file(), secret


# --- the image -----------------------------------------------------------------------


def test_the_image_is_multi_stage_slim_and_runs_the_api_by_default() -> None:
    instructions = dockerfile_instructions()
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(stages) >= 2
    (base,) = [
        args.partition("=")[2]
        for keyword, args in instructions
        if keyword == "ARG" and args.startswith("PYTHON_IMAGE=")
    ]
    # By digest (tests/deploy/test_supply_chain.py); the tag names the release it is.
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?@sha256:[0-9a-f]{64}", base)
    assert dockerfile_cmd() == ["python", "-m", "api"]
    # No ENTRYPOINT: compose and Kubernetes give whole commands (python -m ...).
    assert "ENTRYPOINT" not in {keyword for keyword, _ in instructions}
    assert dockerfile_env()["PYTHONUNBUFFERED"] == "1"
    final = " ".join(args for keyword, args in dockerfile_final_stage() if keyword == "RUN")
    # The project's wheel only: no test extras, nothing from the network in the final stage.
    assert "--no-index" in final
    assert "device-binding" in final
    assert "[test]" not in DOCKERFILE.read_text()


def _ignore_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression (Go's filepath.Match, plus ``**``),
    anchored at the root of the context as Docker anchors them."""
    pattern = pattern.strip("/")
    regex = ""
    for token in re.split(r"(\*\*/|\*|\?)", pattern):
        if token == "**/":
            regex += "(?:.*/)?"
        elif token == "*":
            regex += "[^/]*"
        elif token == "?":
            regex += "[^/]"
        else:
            regex += re.escape(token)
    return re.compile(regex)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (or a folder it is in) out of the context."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        _ignore_pattern(pattern).fullmatch(prefix) for pattern in patterns for prefix in prefixes
    )


def shipped_packages() -> list[str]:
    """The top-level packages the wheel (and so the image) holds, as setuptools finds them."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(
        path.name
        for path in REPO.iterdir()
        if (path / "__init__.py").exists()
        and any(fnmatch.fnmatchcase(path.name, pattern) for pattern in include)
    )


def test_the_image_ships_every_package_its_processes_import() -> None:
    shipped = shipped_packages()
    assert {process.module.split(".")[0] for process in all_processes()} <= set(shipped)
    first_party = {path.name for path in REPO.iterdir() if (path / "__init__.py").exists()}
    for package in shipped:
        for module in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(module.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    assert top not in first_party or top in shipped, (
                        f"{module.relative_to(REPO)} imports {name}, which the wheel lacks"
                    )


def test_the_build_context_holds_the_packages_and_not_the_secrets() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns)  # the simple matcher below
    for kept in ["pyproject.toml", *shipped_packages()]:
        assert not dockerignored(kept, patterns), kept
    # The migrations' configuration travels as package data (pyproject's package-data).
    assert not dockerignored("worker/migrations/alembic.ini", patterns)
    for left_out in (".venv", "var/dev/signing-key.pem", ".git", "tests", "deploy"):
        assert dockerignored(left_out, patterns), left_out
    for cache in ("worker/__pycache__/app.cpython-311.pyc", ".mypy_cache", ".pytest_cache"):
        assert dockerignored(cache, patterns), cache


def iter_package_data() -> Iterator[Path]:
    for package in shipped_packages():
        yield from (REPO / package).rglob("*.ini")
        yield from (REPO / package).rglob("*.mako")


def test_migration_files_are_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["*"]
    migrations = [path for path in iter_package_data() if "migrations" in path.parts]
    assert {path.parts[-3] for path in migrations} >= {"worker", "audit"}
    for path in migrations:
        assert any(fnmatch.fnmatchcase(path.name, pattern) for pattern in patterns), path
        # In a package (a folder with __init__.py), or setuptools would not look there.
        assert (path.parent / "__init__.py").exists(), path


# --- Kafka: each process its own principal, and the network ----------------------------------


def kafka_containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, container, pod spec) of every k8s container that reaches Kafka."""
    found = []
    kafka_config = find("ConfigMap", "device-binding-kafka")["metadata"]["name"]
    for workload in workloads():
        spec = pod_spec(workload)
        for container in spec["containers"]:
            sources = [s.get("configMapRef", {}).get("name") for s in container.get("envFrom", [])]
            if kafka_config in sources:
                found.append((f"{resource_id(workload)}/{container['name']}", container, spec))
    return found


def test_every_kafka_client_logs_in_as_its_own_principal_with_its_own_secret() -> None:
    kafka = find("ConfigMap", "device-binding-kafka")["data"]
    assert kafka["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert kafka["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    principals = []
    for where, container, _spec in kafka_containers():
        module = container["command"][2]
        env = {variable["name"]: variable for variable in container["env"]}
        principal = env["KAFKA_SASL_USERNAME"]["value"]
        assert principal == PRINCIPAL_OF[module], where
        reference = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert reference["name"] == f"device-binding-kafka-{principal}", where
        secret = find("Secret", reference["name"])
        assert reference["key"] in secret["stringData"], where
        principals.append(principal)
    # Every process of the product, and no principal shared by two kinds of process.
    assert sorted(principals) == sorted([ADMIN, API, WORKER, AUDIT, FRAUD])


def test_every_kafka_client_trusts_the_ca_from_its_secret() -> None:
    cafile = Path(find("ConfigMap", "device-binding-kafka")["data"]["KAFKA_SSL_CAFILE"])
    for where, container, spec in kafka_containers():
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        (mount,) = [m for m in container["volumeMounts"] if cafile.is_relative_to(m["mountPath"])]
        assert mount["readOnly"] is True, where
        source = volumes[mount["name"]]["secret"]
        assert source["secretName"] == KAFKA_CA_SECRET, where
        assert cafile.name in find("Secret", KAFKA_CA_SECRET)["stringData"], where


def test_the_topics_job_applies_the_acls_as_admin() -> None:
    (job,) = [p for p in k8s_processes() if p.module == "provisioning"]
    assert job.arguments == ["--acls"]


def test_keda_measures_the_lag_as_the_lag_reader() -> None:
    (trigger,) = find("ScaledObject", "device-binding-worker")["spec"]["triggers"]
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    authentication = find("TriggerAuthentication", trigger["authenticationRef"]["name"])
    references = {ref["parameter"]: ref for ref in authentication["spec"]["secretTargetRef"]}
    assert set(references) == {"username", "password", "ca"}
    secret = find("Secret", references["password"]["name"])
    assert secret["stringData"][references["username"]["key"]] == LAG_READER
    assert references["username"]["name"] == references["password"]["name"]
    assert (references["ca"]["name"], references["ca"]["key"]) == (KAFKA_CA_SECRET, "ca.crt")


def network_policies() -> list[dict[str, Any]]:
    return [r for r in k8s_resources() if r["kind"] == "NetworkPolicy"]


def _selected(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _pod_labels() -> dict[str, dict[str, str]]:
    return {resource_id(w): w["spec"]["template"]["metadata"]["labels"] for w in workloads()}


def test_the_namespace_denies_all_traffic_not_allowed() -> None:
    (deny,) = [
        p
        for p in network_policies()
        if p["spec"]["podSelector"] == {}
        and "ingress" not in p["spec"]
        and "egress" not in p["spec"]
    ]
    assert sorted(deny["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    for policy in network_policies():
        for rule in [*policy["spec"].get("ingress", []), *policy["spec"].get("egress", [])]:
            # Every allowance names its peers and its ports: no rule opens everything.
            assert rule.get("from") or rule.get("to"), resource_id(policy)
            assert rule["ports"], resource_id(policy)


def test_kafka_clients_and_only_they_reach_the_brokers_listener() -> None:
    bootstrap = find("ConfigMap", "device-binding-kafka")["data"]["KAFKA_BOOTSTRAP_SERVERS"]
    port = int(bootstrap.rpartition(":")[2])
    (kafka,) = [
        p
        for p in network_policies()
        if any(q["port"] == port for r in p["spec"].get("egress", []) for q in r["ports"])
    ]
    labels = _pod_labels()
    clients = {where.rsplit("/", 1)[0] for where, _, _ in kafka_containers()}
    reaching = {workload for workload, pod in labels.items() if _selected(kafka, pod)}
    assert reaching == clients
    # The migrations Job has no Kafka credentials and no route to the brokers.
    assert "Job/device-binding-migrations" not in reaching


def test_only_the_api_takes_calls_and_only_on_its_port() -> None:
    labels = _pod_labels()
    api_port = 8000
    for policy in network_policies():
        for rule in policy["spec"].get("ingress", []):
            selected = {w for w, pod in labels.items() if _selected(policy, pod)}
            ports = {port["port"] for port in rule["ports"]}
            if api_port in ports:
                assert selected == {"Deployment/device-binding-api"}, resource_id(policy)
            else:
                # Metrics only: the API's admin port and the workers' probe port.
                assert ports <= {API_ADMIN_PORT, WORKER_PORT}, resource_id(policy)
