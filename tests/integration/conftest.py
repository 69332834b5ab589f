"""A real `lamina serve` process on a loopback port, and boto3 clients signed for it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig

from tests.conftest import free_port, make_zip
from tests.integration.recorder import Recorder

ACCESS_KEY = "LKIATESTKEY000000001"
SECRET_KEY = "test-secret-key-0000000000000000000000001"


@dataclass
class Server:
    url: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self, service: str = "lambda", **kw):
        return boto3.client(
            service, endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=kw.pop("key", ACCESS_KEY), aws_secret_access_key=kw.pop("secret", SECRET_KEY),
            config=BotoConfig(retries={"total_max_attempts": 1}, read_timeout=120), **kw,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(data_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    env = dict(os.environ)
    env.update({"LAMINA_ACCESS_KEY_ID": ACCESS_KEY, "LAMINA_SECRET_ACCESS_KEY": SECRET_KEY})
    env.update(extra_env or {})
    out = open(log_path, "ab")
    logged_before = out.tell()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lamina", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env, stdout=out, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lamina serve exited: {log_path.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)
            continue
        # Listening comes first; the banner (printed once the signal handlers are in place) last.
        with open(log_path, "rb") as log:
            log.seek(logged_before)
            banner_done = b"--endpoint-url" in log.read()
        if banner_done:
            break
        time.sleep(0.02)
    else:
        proc.kill()
        raise RuntimeError("lamina serve did not start")
    return Server(f"http://127.0.0.1:{port}", port, data_dir, proc, log_path)


def stop_server(server: Server) -> int:
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise


@contextmanager
def serving(tmp_path_factory, name: str, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """A server of a test module's own (its own data directory and settings), stopped cleanly after."""
    base = tmp_path_factory.mktemp(name)
    srv = start_server(base / "data", base / "server.log", extra_env)
    try:
        yield srv
    finally:
        assert stop_server(srv) == 0, srv.output()


@contextmanager
def mapped_function(lam, prefix: str, handler_module: str, recorder: Recorder) -> Iterator[str]:
    """A Python function (app.handler from `handler_module`) that can reach the recorder (CB); after the
    test, its event source mappings and the function itself are deleted."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/x", Timeout=30,
                        Code={"ZipFile": make_zip({"app.py": handler_module})},
                        Environment={"Variables": {"CB": recorder.url}})
    yield name
    for m in lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]:
        lam.delete_event_source_mapping(UUID=m["UUID"])
    lam.delete_function(FunctionName=name)


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    """An HTTP endpoint on loopback that functions post what they saw to (tests/integration/recorder.py)."""
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("lamina")
    srv = start_server(base / "data", base / "server.log")
    yield srv
    code = stop_server(srv)
    assert code == 0, srv.output()


@pytest.fixture(scope="session")
def lam(server):
    return server.client()


@pytest.fixture
def fname() -> str:
    return f"fn-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def s3(server):
    """boto3's s3 client for lamina's object store (the session server)."""
    return server.client("s3")


@pytest.fixture
def bucket(s3) -> Iterator[str]:
    """A new, empty bucket; emptied and deleted afterwards."""
    name = f"bk-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=name)
