"""Write the deployments' NATS users (`python -m imagetron.nats_users`; `make contracts`).

The users and their permissions come from the contract (`imagetron_platform.nats_access`);
each deployment's NATS server includes the same `authorization` block, with every password
read from the server's environment (`IMAGETRON_NATS_<USER>_PASSWORD`):
- compose: `deploy/nats/imagetron-users.conf`, included by `deploy/nats/nats.conf`;
- Kubernetes: the ConfigMap `deploy/k8s/nats-users.yaml`, for the (external) NATS server;
- the Helm chart: `charts/imagetron/files/nats-users.conf`, rendered as a ConfigMap.
`tests/test_deploy_files.py` fails when one of them is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from imagetron_platform.nats_access import authorization_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "nats" / "imagetron-users.conf"
K8S_FILE = ROOT / "deploy" / "k8s" / "nats-users.yaml"
CHART_FILE = ROOT / "charts" / "imagetron" / "files" / "nats-users.conf"
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


def files() -> dict[Path, str]:
    """Every generated file and what it must hold."""
    config = authorization_config()
    return {COMPOSE_FILE: config, CHART_FILE: config, K8S_FILE: k8s_config_map(config)}


def main() -> int:
    for path, text in files().items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
