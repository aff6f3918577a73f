"""Integration tests for imagetron.servers: real PostgreSQL, NATS and S3 processes."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import nats
import psutil  # type: ignore[import-untyped]
import pytest
from minio import Minio
from minio.error import S3Error

from imagetron.servers import (
    LOCALHOST,
    InfraStack,
    NatsServer,
    PortInUseError,
    PostgresServer,
    S3Credentials,
    ServerStartError,
    ensure_port_free,
    free_port,
    free_ports,
)
from imagetron.servers.ports import PORT_RANGE_ENV, worker_port_range
from imagetron.testing import server_root

pytestmark = pytest.mark.integration

PR_SET_CHILD_SUBREAPER = 36


def minio_client(endpoint: str, credentials: S3Credentials, *, secret: str | None = None) -> Minio:
    return Minio(
        urlsplit(endpoint).netloc,
        access_key=credentials.access_key,
        secret_key=secret or credentials.secret_key,
        secure=False,
        region=credentials.region,
    )


def process_tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def is_gone(proc: psutil.Process) -> bool:
    """True if the process no longer exists (a reused pid is another process)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = procs
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if not is_gone(p)]
        time.sleep(0.05)
    return alive


# --------------------------------------------------------------------------- ports


@pytest.fixture
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where a test's own PostgreSQL keeps its data: outside pytest's directory, which its
    unprivileged user may not be able to traverse (`imagetron.testing.server_root`; a clean
    CI run's initdb failed in tmp_path while another pytest session started)."""
    with server_root(tmp_path_factory, f"servers-{uuid.uuid4().hex[:8]}") as root:
        yield root


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    for port in ports:
        ensure_port_free(port, "test")
    assert 0 < free_port() < 65536


def test_two_draws_never_hand_out_the_same_port(monkeypatch) -> None:
    """A stack draws its ports in several calls before any server binds them: a port drawn
    once is not drawn again (here: 600 and 600 from a range of 1,000 could not both be
    disjoint by chance)."""
    monkeypatch.setenv("IMAGETRON_PORT_RANGE", "20000-20999")
    first, second = free_ports(600), free_ports(600)
    assert not set(first) & set(second)


def test_a_stacks_own_ports_are_not_drawn_again_before_its_servers_bind_them(
    monkeypatch, tmp_path
) -> None:
    """`imagetron up` is given its ports by its caller, binds the services' last, and draws
    the S3 server's internal ports first: one of them was once the publisher's (CI, port
    in use). The stack reserves the ports it is given."""
    from dataclasses import astuple

    from imagetron.stack import EmbeddedStack, StackPorts

    monkeypatch.setenv("IMAGETRON_PORT_RANGE", "21000-22000")  # 1,001 ports
    given = StackPorts(*range(21100, 21111))
    EmbeddedStack(tmp_path, given, fork_server=False)  # not started
    drawn = free_ports(900)  # nearly all of the range
    assert not set(drawn) & set(astuple(given))


def test_ensure_port_free_raises_for_a_bound_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUseError) as info:
            ensure_port_free(port, "PostgreSQL", option="--postgres-port")
        assert info.value.port == port
        assert info.value.what == "PostgreSQL"
        assert str(info.value) == (
            f"port {port} for PostgreSQL is already in use on 127.0.0.1; "
            "stop that process or choose another port with --postgres-port"
        )
    ensure_port_free(port, "PostgreSQL")  # free again once the socket is closed


def test_server_refuses_to_start_on_a_busy_port(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        sock.listen()
        server = NatsServer(tmp_path / "nats", sock.getsockname()[1])
        with pytest.raises(PortInUseError, match="for NATS is already in use"):
            server.start()
        assert server.pid is None


# ---------------------------------------------------------------------- PostgreSQL


async def test_postgres_answers_select_1(infra: InfraStack, postgres_dsn: str) -> None:
    assert postgres_dsn.startswith("postgresql+asyncpg://imagetron:")
    assert postgres_dsn.endswith(f"@127.0.0.1:{infra.postgres.port}/imagetron")
    conn = await asyncpg.connect(infra.postgres.asyncpg_dsn)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select current_database()") == "imagetron"
        assert await conn.fetchval("show listen_addresses") == "127.0.0.1"
    finally:
        await conn.close()


async def test_postgres_rejects_a_wrong_password(infra: InfraStack) -> None:
    pg = infra.postgres
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            host=pg.host, port=pg.port, user=pg.user, password="wrong", database=pg.database
        )


async def test_postgres_keeps_data_across_stop_and_start(server_dir: Path) -> None:
    first = PostgresServer(server_dir / "pg")
    with first:
        assert first.initialised_cluster
        conn = await asyncpg.connect(first.asyncpg_dsn)
        try:
            await conn.execute("create table notes (body text)")
            await conn.execute("insert into notes values ('kept')")
        finally:
            await conn.close()
        old_tree = process_tree(first.pid or -1)
    assert first.pid is None
    assert wait_gone(old_tree, timeout=5) == []

    second = PostgresServer(server_dir / "pg", free_port())  # same dir, new port
    with second:
        assert not second.initialised_cluster  # reused, not re-initialised
        conn = await asyncpg.connect(second.asyncpg_dsn)
        try:
            assert await conn.fetchval("select body from notes") == "kept"
        finally:
            await conn.close()


async def test_a_killed_postgres_starts_again_with_its_data(server_dir: Path) -> None:
    """SIGKILL leaves backends (holding shared memory) and postmaster.pid behind; the next
    start clears both instead of failing on them."""
    server = PostgresServer(server_dir / "pg")
    with server:
        conn = await asyncpg.connect(server.asyncpg_dsn)
        await conn.execute("create table notes (body text); insert into notes values ('kept')")
        busy = await asyncpg.connect(server.asyncpg_dsn)  # a backend that outlives its leader
        postmaster = server.pid
        assert postmaster is not None
        os.kill(postmaster, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not server.exited and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert server.exit_status == "killed by SIGKILL"
        assert (server.pgdata / "postmaster.pid").exists()  # the stale lock
        for c in (conn, busy):
            c.terminate()

        server.start()
        assert server.pid not in (None, postmaster)
        again = await asyncpg.connect(server.asyncpg_dsn)
        try:
            assert await again.fetchval("select body from notes") == "kept"
        finally:
            await again.close()


def test_crash_during_start_reports_the_log(server_dir: Path) -> None:
    server = PostgresServer(server_dir / "pg", settings={"shared_buffers": "lots"})
    with pytest.raises(ServerStartError) as info:
        server.start()
    message = str(info.value)
    assert "PostgreSQL exited with code" in message
    assert "shared_buffers" in message  # the line from the server's own log
    assert str(server.log_path) in message
    assert server.pid is None


# ---------------------------------------------------------------------------- NATS


async def test_nats_has_jetstream(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.account_info()
        assert info.limits is not None
        stream = f"test_{uuid.uuid4().hex}"
        await js.add_stream(name=stream, subjects=[f"{stream}.>"])
        ack = await js.publish(f"{stream}.hello", b"world")
        assert ack.stream == stream
        assert ack.seq == 1
        await js.delete_stream(stream)
    finally:
        await nc.close()


def test_start_is_idempotent(infra: InfraStack) -> None:
    pid = infra.nats.pid
    assert pid is not None
    assert infra.nats.start() is infra.nats
    assert infra.nats.pid == pid


def test_server_started_from_a_short_lived_thread_survives_it(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG fires when the forking *thread* exits; the spawner prevents that."""
    server = NatsServer(tmp_path / "nats")
    thread = threading.Thread(target=server.start)
    thread.start()
    thread.join()
    try:
        time.sleep(0.5)
        assert server.running
        assert psutil.Process(server.pid or -1).status() != psutil.STATUS_ZOMBIE
    finally:
        server.stop()


# ------------------------------------------------------------------------------ S3


def test_s3_bucket_put_and_get(s3_endpoint: str, s3_credentials: S3Credentials) -> None:
    assert s3_endpoint.startswith("http://127.0.0.1:")
    client = minio_client(s3_endpoint, s3_credentials)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client.make_bucket(bucket)
    assert client.bucket_exists(bucket)
    payload = b"\x89PNG not really"
    client.put_object(bucket, "images/a.png", io.BytesIO(payload), len(payload), "image/png")
    response = client.get_object(bucket, "images/a.png")
    try:
        assert response.read() == payload
        assert response.headers["Content-Type"] == "image/png"
    finally:
        response.close()
        response.release_conn()
    assert [o.object_name for o in client.list_objects(bucket, recursive=True)] == ["images/a.png"]


def test_s3_rejects_wrong_credentials(s3_endpoint: str, s3_credentials: S3Credentials) -> None:
    client = minio_client(s3_endpoint, s3_credentials, secret="not-the-secret")
    with pytest.raises(S3Error) as info:
        client.list_buckets()
    assert info.value.code in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}


# ---------------------------------------------------------------------- life cycle


async def test_stack_stop_leaves_no_process_and_data_survives_restart(server_dir: Path) -> None:
    stack = InfraStack(server_dir / "stack")
    bucket = "persisted"
    stream = "PERSISTED"
    with stack:
        conn = await asyncpg.connect(stack.postgres.asyncpg_dsn)  # left open on purpose
        await conn.execute("create table t (x int); insert into t values (42)")
        nc = await nats.connect(stack.nats.url)
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=["persisted.>"])
        await js.publish("persisted.one", b"1")
        await nc.close()
        s3 = minio_client(stack.s3.endpoint, stack.s3.credentials)
        s3.make_bucket(bucket)
        s3.put_object(bucket, "k", io.BytesIO(b"v"), 1)

        procs = [p for pid in stack.pids().values() for p in process_tree(pid or -1)]
        assert len(procs) > 3  # postgres has background workers and a backend
    # stop() returned: every process of every server must be gone
    assert stack.pids() == {"PostgreSQL": None, "NATS": None, "S3 (SeaweedFS)": None}
    assert wait_gone(procs, timeout=1) == []
    conn.terminate()  # the leaked connection did not keep PostgreSQL from stopping

    with stack:  # same dirs, same ports
        conn = await asyncpg.connect(stack.postgres.asyncpg_dsn)
        try:
            assert await conn.fetchval("select x from t") == 42
        finally:
            await conn.close()
        nc = await nats.connect(stack.nats.url)
        try:
            info = await nc.jetstream().stream_info(stream)
            assert info.state.messages == 1
        finally:
            await nc.close()
        s3 = minio_client(stack.s3.endpoint, stack.s3.credentials)
        assert s3.get_object(bucket, "k").read() == b"v"


def set_child_subreaper(enabled: bool) -> None:
    """Adopt orphaned descendants so that this test reaps them itself, not PID 1."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_children_die_with_their_parent(tmp_path: Path) -> None:
    """If the Python parent is SIGKILLed, PR_SET_PDEATHSIG takes the servers down."""
    script = textwrap.dedent(
        """
        import json, sys, time
        from imagetron.servers import InfraStack
        stack = InfraStack(sys.argv[1]).start()
        sockets = [str(p) for p in stack.s3.stray_socket_paths()]
        print(json.dumps({"pids": list(stack.pids().values()), "sockets": sockets}), flush=True)
        time.sleep(300)
        """
    )
    set_child_subreaper(True)
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "orphans")],
        stdout=subprocess.PIPE,
        text=True,
    )
    procs: list[psutil.Process] = []
    sockets: list[str] = []
    try:
        assert parent.stdout is not None
        started = json.loads(parent.stdout.readline())
        pids, sockets = started["pids"], started["sockets"]
        assert len(pids) == 3
        assert all(pids)
        servers = [psutil.Process(pid) for pid in pids]
        procs = [p for s in servers for p in [s, *s.children(recursive=True)]]
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        leftovers = wait_gone(procs, timeout=20)
        assert leftovers == [], f"orphaned: {leftovers}"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for proc in procs:  # do not leave orphans behind if the test failed
            if not is_gone(proc):
                proc.kill()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)  # reap the adopted orphan
        set_child_subreaper(False)
        for path in sockets:  # the killed parent could not clean up after weed
            Path(path).unlink(missing_ok=True)


def test_ports_come_from_the_range_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent test workers draw from disjoint ranges (the root conftest.py)."""
    monkeypatch.setenv(PORT_RANGE_ENV, "21000-22999")
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(21000 <= port <= 22999 for port in ports)
    first, second = worker_port_range(0, 2), worker_port_range(1, 2)
    low0, high0 = map(int, first.split("-"))
    low1, high1 = map(int, second.split("-"))
    assert low0 == 15000
    assert high0 < low1 <= high1
    assert high1 - low1 == high0 - low0
    for wrong in ("21000", "22999-21000", "80-90", "a-b"):
        monkeypatch.setenv(PORT_RANGE_ENV, wrong)
        with pytest.raises(ValueError, match=PORT_RANGE_ENV):
            free_ports(1)
