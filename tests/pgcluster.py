"""A throwaway PostgreSQL primary with a streaming replica (and PgBouncer before them), started by a test.

The server binaries of the machine (/usr/lib/postgresql/<version>/bin) in a temporary directory, on
free ports. PostgreSQL refuses to run as root, so under root every command runs as the `postgres`
user (runuser). Stopped with `pg_ctl stop -m immediate`: nothing of it is worth a clean shutdown.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))


def free_port() -> int:
    """A local TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(*cmd: str) -> None:
    subprocess.run(_as_owner(list(cmd)), check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Cluster:
    """The primary's and the replica's URLs (SQLAlchemy form, database `popex`) and the directory."""

    primary: str
    replica: str
    root: Path
    bin: Path

    def wait_replayed(self, timeout: float = 10.0) -> None:
        """Until the replica has replayed everything the primary had written when called."""
        primary, replica = create_engine(self.primary), create_engine(self.replica)
        try:
            with primary.connect() as conn:
                lsn = conn.scalar(text("SELECT pg_current_wal_lsn()"))
            deadline = time.monotonic() + timeout
            with replica.connect() as conn:
                while not conn.scalar(
                    text("SELECT pg_last_wal_replay_lsn() >= CAST(:l AS pg_lsn)"), {"l": lsn}
                ):
                    assert time.monotonic() < deadline, "the replica did not catch up"
                    time.sleep(0.02)
        finally:
            primary.dispose()
            replica.dispose()


def _binaries_and_root(prefix: str) -> tuple[Path, Path]:
    """The newest server binaries and a new directory the servers' owner may write (skips without them)."""
    if not BINS or (shutil.which("runuser") is None and os.geteuid() == 0):
        pytest.skip("no PostgreSQL server binaries here")
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    return BINS[-1], root


def _initdb(bin_: Path, data: Path) -> None:
    _run(str(bin_ / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
         "--locale=C.UTF-8", "--no-sync")  # fmt: skip


def _stop(bin_: Path, data: Path) -> None:
    subprocess.run(
        _as_owner([str(bin_ / "pg_ctl"), "-D", str(data), "stop", "-m", "immediate"]),
        capture_output=True,
        timeout=30,
    )


@contextmanager
def primary_and_replica() -> Iterator[Cluster]:
    """A primary with the `popex` database (empty) and a hot standby streaming from it."""
    bin_, root = _binaries_and_root("popex-replica-")
    ports = free_port(), free_port()
    started: list[Path] = []
    try:
        primary = root / "primary"
        _initdb(bin_, primary)
        # initdb's pg_hba.conf lets local TCP connections replicate (trust): pg_basebackup needs that.
        for data, port in ((primary, ports[0]),):
            _start(bin_, data, port, root)
            started.append(data)
        primary_url = f"postgresql+psycopg2://postgres@127.0.0.1:{ports[0]}/popex"
        admin = create_engine(
            f"postgresql+psycopg2://postgres@127.0.0.1:{ports[0]}/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE popex"))
        admin.dispose()
        standby = root / "standby"
        _run(str(bin_ / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(ports[0]), "-U", "postgres",
             "-D", str(standby), "-R", "-X", "stream", "-c", "fast", "--no-sync")  # fmt: skip
        _start(bin_, standby, ports[1], root)
        started.append(standby)
        yield Cluster(primary_url, f"postgresql+psycopg2://postgres@127.0.0.1:{ports[1]}/popex", root, bin_)
    finally:
        for data in reversed(started):
            _stop(bin_, data)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_server() -> Iterator[tuple[str, int, Path]]:
    """A new, empty PostgreSQL server (initdb, no database of ours, no role but postgres), as a machine
    restored onto after a disaster has; yields its admin URL (database postgres), port and binaries."""
    bin_, root = _binaries_and_root("popex-fresh-")
    port, data = free_port(), root / "data"
    try:
        _initdb(bin_, data)
        _start(bin_, data, port, root)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres", port, bin_
    finally:
        _stop(bin_, data)
        shutil.rmtree(root, ignore_errors=True)


def _start(bin_: Path, data: Path, port: int, root: Path) -> None:
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c fsync=off "
        "-c wal_level=replica -c max_wal_senders=4 -c shared_buffers=32MB"
    )
    _run(str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-o", options, "-w", "start")


@contextmanager
def pgbouncer(target_port: int, root: Path, *, pool_size: int = 2) -> Iterator[int]:
    """PgBouncer in transaction mode before the server on target_port (database `popex`); yields its port."""
    binary = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if binary is None:
        pytest.skip("pgbouncer is not installed")
    port = free_port()
    folder = root / f"pgbouncer-{port}"
    folder.mkdir()
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
popex = host=127.0.0.1 port={target_port} dbname=popex
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""
    )
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        for child in folder.iterdir():
            shutil.chown(child, "postgres", "postgres")
    process = subprocess.Popen(
        _as_owner([binary, "--quiet", str(folder / "pgbouncer.ini")]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
