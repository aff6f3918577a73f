"""The `imagetron` command."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from imagetron.client.commands import register as register_client_commands
from imagetron.servers import ServerError, forkserver
from imagetron.servers.forkserver import ForkServer
from imagetron.stack_ports import FORK_ORDER, StackPorts
from imagetron.supervisor import Supervisor, format_status, read_status

app = typer.Typer(
    help="Imagetron: from an idea to stored AI images, live in the browser.",
    epilog=(
        "Client commands exit with 0 when done, 1 when the API refused the request (its "
        "detail is printed), 2 for a wrong command line, 3 when not logged in or the key is "
        "not valid, 4 when the work ended without its result (failed, cancelled, an image "
        "not stored), 5 when Imagetron is unreachable, unavailable or too slow."
    ),
    no_args_is_help=True,
    add_completion=False,
)

_DEFAULT = StackPorts()


def _port(what: str) -> Any:
    return typer.Option(help=f"Port of {what} on 127.0.0.1.", min=1, max=65535)


@app.callback()
def _root() -> None:
    """Imagetron's command line."""


register_client_commands(app)


def _start_fork_server(data_dir: Path) -> ForkServer | None:
    """Start the fork server first of all, in the background: it imports the services' code
    while this process imports the stack and starts the infrastructure (the stack's start
    then waits for it, and reports it if it failed)."""
    if not forkserver.enabled():
        return None
    server = ForkServer(data_dir.absolute() / "logs", FORK_ORDER)

    def start() -> None:
        with contextlib.suppress(ServerError):
            server.start()

    threading.Thread(target=start, name="imagetron-forkserver-start", daemon=True).start()
    return server


@app.command()
def up(
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar="IMAGETRON_DATA_DIR", help="Where every server keeps its data and logs."
        ),
    ] = Path(".imagetron"),
    gateway_port: Annotated[int, _port("the gateway (the API)")] = _DEFAULT.gateway,
    prompts_port: Annotated[int, _port("the prompts service")] = _DEFAULT.prompts,
    images_port: Annotated[int, _port("the images service")] = _DEFAULT.images,
    notifier_port: Annotated[int, _port("the notifier")] = _DEFAULT.notifier,
    publisher_port: Annotated[int, _port("the publisher")] = _DEFAULT.publisher,
    sandbox_port: Annotated[int, _port("the sandbox")] = _DEFAULT.sandbox,
    sandbox_sftp_port: Annotated[
        int, _port("the sandbox's stock agency (SFTP)")
    ] = _DEFAULT.sandbox_sftp,
    postgres_port: Annotated[int, _port("PostgreSQL")] = _DEFAULT.postgres,
    nats_port: Annotated[int, _port("NATS")] = _DEFAULT.nats,
    nats_monitor_port: Annotated[int, _port("NATS monitoring")] = _DEFAULT.nats_monitor,
    s3_port: Annotated[int, _port("the S3 server")] = _DEFAULT.s3,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster",
            help=(
                "Run as a multi-node deployment would: NATS as a three-node JetStream "
                "cluster (streams with three replicas) and two replicas of every service, "
                "the gateways and notifiers behind a reverse proxy (Caddy) on their ports."
            ),
        ),
    ] = False,
) -> None:
    """Start a complete Imagetron on this machine: no Docker, no accounts.

    PostgreSQL, NATS JetStream and an S3 server from Python wheels, the sandbox standing in
    for the image, LLM and stock-agency providers, and the five services. Every process is
    supervised: one that dies is restarted (after a growing delay; `imagetron status` shows
    them all). Ctrl-C stops everything."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    ports = StackPorts(
        gateway=gateway_port,
        prompts=prompts_port,
        images=images_port,
        notifier=notifier_port,
        publisher=publisher_port,
        sandbox=sandbox_port,
        sandbox_sftp=sandbox_sftp_port,
        postgres=postgres_port,
        nats=nats_port,
        nats_monitor=nats_monitor_port,
        s3=s3_port,
    )
    # Only a flag: a signal handler that takes a lock (Event.set) can deadlock with the
    # main thread waiting on that same lock.
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    typer.echo(f"Starting Imagetron in {data_dir.absolute()} …")
    fork_server = _start_fork_server(data_dir)
    # The stack (and through it every service's settings) only when one starts: the other
    # commands start in a fraction of a second.
    from imagetron.stack import CLUSTER, ClusterShape, EmbeddedStack

    try:
        stack = EmbeddedStack(
            data_dir,
            ports,
            admin_api_key=os.environ.get("IMAGETRON_BOOTSTRAP_API_KEY"),
            shape=CLUSTER if cluster else ClusterShape(),
            fork_server=fork_server or False,
        )
        stack.start()
    except ServerError as exc:
        typer.secho(f"Imagetron could not start: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc

    typer.secho("\nImagetron is ready.", fg="green", bold=True)
    typer.echo(f"  Studio:   {stack.gateway_url}/   (sign in with the API key)")
    typer.echo(f"  API:      {stack.gateway_url}   (docs: {stack.gateway_url}/docs)")
    typer.echo(f"  API key:  {stack.admin_api_key}")
    typer.echo(f"  Logs:     {stack.root / 'logs'}")
    typer.echo(
        "  Try:      curl -H 'Authorization: Bearer <API key>' " + stack.gateway_url + "/api/v1/me"
    )
    typer.echo("Press Ctrl-C to stop.\n")

    def say(line: str) -> None:
        typer.secho(f"{time.strftime('%H:%M:%S')} {line}", fg="yellow", err=True)

    supervisor = Supervisor(stack.processes(), say=say, status_file=stack.status_path)
    supervisor.run(lambda: bool(stopping))
    typer.echo("Stopping Imagetron …")
    stack.stop()
    typer.echo("Stopped.")


@app.command()
def status(
    data_dir: Annotated[
        Path,
        typer.Option(envvar="IMAGETRON_DATA_DIR", help="The folder `imagetron up` runs in."),
    ] = Path(".imagetron"),
) -> None:
    """Every process of the running `imagetron up`: state, PID, restarts, last exit,
    readiness. Exits with 0 when all are ready, 1 when some are not, 2 when it is not
    running."""
    report = read_status(data_dir / "status.json")
    if report is None:
        typer.secho(f"Imagetron is not running in {data_dir.absolute()}.", fg="red", err=True)
        raise typer.Exit(2)
    typer.echo(format_status(report))
    raise typer.Exit(0 if all(p["ready"] for p in report["processes"]) else 1)


def main() -> None:
    app(prog_name="imagetron")


if __name__ == "__main__":  # pragma: no cover
    main()
