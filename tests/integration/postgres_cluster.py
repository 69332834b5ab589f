"""A throwaway PostgreSQL 15 cluster (initdb + pg_ctl in a temp dir) with wal_level=logical and wal2json.

Use it from a test module with `from tests.integration.postgres_cluster import postgres  # noqa: F401` (the
session fixture), or `start_cluster()` / `Cluster.stop()` by hand. It listens on a free loopback port and on
a unix socket in its own directory; as root it runs as `nobody` (postgres refuses to run as root). Skips
the test when Debian's PostgreSQL 15 binaries or wal2json are missing.

    cluster.env()        PGHOST/PGPORT/PGUSER for a process (e.g. `lamina serve`) that should reach it
    cluster.dsn(db)      a libpq connection string
    cluster.connect(db)  a psycopg connection (autocommit)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
WAL2JSON = Path("/usr/lib/postgresql/15/lib/wal2json.so")
UNPRIVILEGED = 65534  # nobody
DATABASE = "app"


def available() -> bool:
    return all((BIN / b).exists() for b in ("initdb", "pg_ctl", "postgres")) and WAL2JSON.exists()


def _as_postgres_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups", *cmd]


@dataclass
class Cluster:
    base: Path
    port: int

    @property
    def data(self) -> Path:
        return self.base / "data"

    def dsn(self, db: str = DATABASE) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}"

    def env(self) -> dict[str, str]:
        return {"PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": "postgres"}

    def connect(self, db: str = DATABASE):
        import psycopg
        return psycopg.connect(self.dsn(db), autocommit=True)

    def stop(self) -> None:
        subprocess.run(_as_postgres_user([str(BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


def start_cluster() -> Cluster:
    base = Path(tempfile.mkdtemp(prefix="lamina-pg-"))
    if os.geteuid() == 0:
        os.chown(base, UNPRIVILEGED, UNPRIVILEGED)
    cluster = Cluster(base, free_port())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "HOME": str(base)}
    try:
        subprocess.run(_as_postgres_user([str(BIN / "initdb"), "-D", str(cluster.data), "-U", "postgres",
                                          "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, env=env, timeout=120)
        with open(cluster.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {cluster.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{base}'\nwal_level = logical\nmax_replication_slots = 20\n"
                       "max_wal_senders = 10\nfsync = off\nfull_page_writes = off\nshared_buffers = 32MB\n")
        subprocess.run(_as_postgres_user([str(BIN / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(cluster.data),
                                          "-l", str(base / "postgres.log")]),
                       check=True, capture_output=True, env=env, timeout=90)
        with cluster.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    if not available():
        pytest.skip("PostgreSQL 15 binaries or wal2json are not installed")
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
