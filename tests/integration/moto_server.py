"""A throwaway `moto_server` (moto[server]) on a free loopback port: a stand-in for SQS, Kinesis, DynamoDB(Streams).

Use it from a test module with `from tests.integration.moto_server import moto  # noqa: F401` (the fixture),
or start one by hand with `start_moto()` / `MotoServer.stop()`. The fixture is session-scoped: one moto per
pytest session; tests keep to their own queue/stream names (uuid-suffixed) instead of resetting it.

    moto.url                       "http://127.0.0.1:PORT"
    moto.client("sqs")             a boto3 client for it (region us-east-1, dummy credentials)
    moto.env()                     AWS_ENDPOINT_URL* + dummy credentials for a `lamina serve` that should use it
    moto.reset()                   forget every resource (POST /moto-api/reset)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig

from tests.conftest import free_port

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account id
MOTO_KEY = "testing"


def _moto_executable() -> list[str]:
    beside = Path(sys.executable).with_name("moto_server")
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-m", "moto.server"]


@dataclass
class MotoServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    _clients: dict[str, object] = field(default_factory=dict)

    def client(self, service: str, region: str = REGION):
        return boto3.client(
            service, endpoint_url=self.url, region_name=region,
            aws_access_key_id=MOTO_KEY, aws_secret_access_key=MOTO_KEY,
            config=BotoConfig(retries={"total_max_attempts": 2}, read_timeout=60),
        )

    def env(self) -> dict[str, str]:
        """Environment for a process (e.g. `lamina serve`) whose AWS SDK calls should go to this moto."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ENDPOINT_URL_SQS": self.url,
            "AWS_ENDPOINT_URL_KINESIS": self.url,
            "AWS_ENDPOINT_URL_DYNAMODB": self.url,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.url,
            "AWS_ACCESS_KEY_ID": MOTO_KEY,
            "AWS_SECRET_ACCESS_KEY": MOTO_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=10).close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_moto(log_path: Path | None = None, timeout: float = 30.0) -> MotoServer:
    port = free_port()
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    env = dict(os.environ)
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.Popen([*_moto_executable(), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=out, stderr=subprocess.STDOUT, env=env)
    if log_path:
        out.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}"
                               + (f": {log_path.read_text(errors='replace')}" if log_path else ""))
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return MotoServer(url, port, proc, log_path)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=10)
    raise RuntimeError("moto_server did not start")


@pytest.fixture(scope="session")
def moto(tmp_path_factory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()
