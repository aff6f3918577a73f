"""The embedded stack's ports and programs: a module of its own, so that commands which only
need the defaults (`imagetron --help`, `imagetron status`) start without importing the stack,
and `imagetron up` can start the fork server before it imports the stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from imagetron.servers.ports import ensure_port_free, free_ports

#: The module each of our processes runs (`python -m <module>`, or forked from the fork
#: server, which imports them all first).
APP_MODULES = {
    "sandbox": "imagetron_sandbox",
    "prompts": "imagetron_prompts",
    "images": "imagetron_images",
    "notifier": "imagetron_notifier",
    "publisher": "imagetron_publisher",
    "gateway": "imagetron_gateway",
}


#: The modules the fork server imports, in this order, each service forked as soon as its own
#: code is: first those whose own start (after the fork) takes longest, the quickest last.
FORK_ORDER = tuple(
    APP_MODULES[name]
    for name in ("images", "gateway", "prompts", "publisher", "notifier", "sandbox")
)


@dataclass(frozen=True)
class StackPorts:
    gateway: int = 8080
    prompts: int = 8081
    images: int = 8082
    notifier: int = 8083
    publisher: int = 8084
    sandbox: int = 8090
    sandbox_sftp: int = 8091
    postgres: int = 15432
    nats: int = 14222
    nats_monitor: int = 18222
    s3: int = 18333

    @classmethod
    def free(cls) -> StackPorts:
        """Distinct free ports for every server (tests, or several stacks side by side)."""
        return cls(*free_ports(len(fields(cls))))

    def check_free(self) -> None:
        """Fail before starting anything, naming the port and the option that moves it."""
        for name, port in asdict(self).items():
            ensure_port_free(port, name, option=f"--{name.replace('_', '-')}-port")
