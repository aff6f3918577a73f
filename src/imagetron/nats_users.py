"""Write the deployments' NATS users (`python -m imagetron.nats_users`; `make contracts`).

The users and their permissions come from the contract (`imagetron_platform.nats_access`);
each deployment's NATS server includes the same `authorization` block, with every password
read from the server's environment (`IMAGETRON_NATS_<USER>_PASSWORD`):
- compose: `deploy/nats/imagetron-users.conf`, included by `deploy/nats/nats.conf`;
- Kubernetes: the ConfigMap `deploy/k8s/nats-users.yaml`, for the (external) NATS server;
- the Helm chart: `charts/imagetron/files/nats-users.conf`, rendered as a ConfigMap;
- the official NATS Helm chart in cluster mode (three nodes, JetStream; what Kubernetes and
  the Helm chart expect, `deploy/nats/helm-values.yaml`): the same block in its ConfigMap,
  included by every node, the passwords from the `imagetron-secrets` Secret.
`tests/test_deploy_files.py` fails when one of them is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from imagetron_platform.nats_access import USERS, authorization_config, password_variable

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "nats" / "imagetron-users.conf"
K8S_FILE = ROOT / "deploy" / "k8s" / "nats-users.yaml"
CHART_FILE = ROOT / "charts" / "imagetron" / "files" / "nats-users.conf"
NATS_CHART_VALUES = ROOT / "deploy" / "nats" / "helm-values.yaml"
#: The Secret (of Imagetron's namespace) the NATS pods read the users' passwords from.
SECRET_NAME = "imagetron-secrets"  # noqa: S105 - the resource's name
#: The key of the Kubernetes ConfigMap (and the file name a NATS server includes).
CONFIG_KEY = "imagetron-users.conf"

_K8S_HEADER = """\
# Made by `python -m imagetron.nats_users` (make contracts) from contracts/asyncapi.yaml: do not
# edit. Imagetron's NATS users and what each may publish and subscribe to, for the NATS server
# (external to this deployment): mount this ConfigMap into the server (copy it to the server's
# namespace), `include` the file in its configuration, and give the server the
# IMAGETRON_NATS_<USER>_PASSWORD variables of imagetron-secrets (README: Deploy).
apiVersion: v1
kind: ConfigMap
metadata:
  name: imagetron-nats-users
data:
"""


def k8s_config_map(config: str) -> str:
    body = "".join(f"    {line}\n" if line else "\n" for line in config.splitlines())
    return f"{_K8S_HEADER}  {CONFIG_KEY}: |\n{body}"


_NATS_CHART_HEADER = """\
# Made by `python -m imagetron.nats_users` (make contracts): do not edit. Values for the
# official NATS Helm chart (nats-io/k8s, chart `nats` 2.14) running the NATS that Imagetron's
# Kubernetes manifests and Helm chart expect: a JetStream cluster of three nodes, so every
# stream keeps three copies (IMAGETRON_STREAM_REPLICAS=3 in the migrate Job;
# config.natsStreamReplicas in Imagetron's chart) and one node can die without losing a
# message; Imagetron's users on every node (the authorization block from the contract,
# included from the chart's ConfigMap), their passwords from the imagetron-secrets Secret;
# TLS for clients from a Secret with tls.crt and tls.key (e.g. a cert-manager Certificate for
# nats.<namespace>.svc) whose CA Imagetron trusts (config.natsCaSecret / imagetron-nats-ca).
# Install it in Imagetron's namespace (it reads imagetron-secrets there):
#   helm repo add nats https://nats-io.github.io/k8s/helm/charts/
#   helm install nats nats/nats --version 2.14.2 -n imagetron -f deploy/nats/helm-values.yaml
# and point IMAGETRON_NATS_URL (config.natsUrl) at tls://nats.imagetron.svc.cluster.local:4222.
"""


def nats_chart_values(config: str) -> str:
    """The official NATS chart's values: cluster of three, JetStream, our users on each."""
    body = "".join(f"        {line}\n" if line else "\n" for line in config.splitlines())
    env = "".join(
        f"    {password_variable(user)}:\n"
        "      valueFrom:\n"
        f"        secretKeyRef: {{name: {SECRET_NAME}, key: {password_variable(user)}}}\n"
        for user in USERS
    )
    return (
        _NATS_CHART_HEADER + "config:\n"
        "  cluster:\n"
        "    enabled: true\n"
        "    replicas: 3\n"
        "  jetstream:\n"
        "    enabled: true\n"
        "    fileStore:\n"
        "      pvc:\n"
        "        size: 10Gi\n"
        "  nats:\n"
        "    tls:\n"
        "      enabled: true\n"
        "      secretName: nats-server-tls\n"
        "  merge:\n"
        f'    00$include: "{CONFIG_KEY}"\n'
        "configMap:\n"
        "  merge:\n"
        "    data:\n"
        f"      {CONFIG_KEY}: |\n{body}"
        "container:\n"
        "  env:\n"
        f"{env}"
        "podDisruptionBudget:\n"
        "  enabled: true\n"
    )


def files() -> dict[Path, str]:
    """Every generated file and what it must hold."""
    config = authorization_config()
    return {
        COMPOSE_FILE: config,
        CHART_FILE: config,
        K8S_FILE: k8s_config_map(config),
        NATS_CHART_VALUES: nats_chart_values(config),
    }


def main() -> int:
    for path, text in files().items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
