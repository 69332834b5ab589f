"""Go as Lambda runs it: the go-hello blueprint built into a `bootstrap` binary, run as provided.al2023."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"
BLUEPRINT = Path(__file__).resolve().parents[2] / "src" / "lamina" / "blueprints" / "go-hello"


@pytest.fixture(autouse=True)
def _delete_function_after(lam, fname):
    """Each test's function is deleted afterwards: the shared server's listings stay short."""
    yield
    try:
        lam.delete_function(FunctionName=fname)
    except lam.exceptions.ResourceNotFoundException:
        pass


def build_go(source_dir: Path, out_dir: Path, main_go: str | None = None) -> bytes:
    """The zip of a `bootstrap` built from the blueprint (its main.go replaced by `main_go` if given)."""
    if shutil.which("go") is None:
        if os.geteuid() == 0:
            pytest.fail("go is missing although we are root: `make install` installs golang-go")
        pytest.skip("no Go toolchain (golang-go) on this host")
    work = out_dir / "src"
    shutil.copytree(source_dir, work)
    if main_go is not None:
        (work / "main.go").write_text(main_go)
    env = dict(os.environ, GOOS="linux", CGO_ENABLED="0", GOFLAGS="-mod=mod", GOPROXY="off",
               GOCACHE=str(out_dir / "gocache"))
    env.setdefault("HOME", str(out_dir))
    built = subprocess.run(["go", "build", "-o", str(out_dir / "bootstrap"), "."], cwd=work, env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    return make_zip({"bootstrap": (out_dir / "bootstrap").read_bytes()}, {"bootstrap": 0o755})


@pytest.fixture(scope="module")
def go_hello_zip(tmp_path_factory) -> bytes:
    return build_go(BLUEPRINT, tmp_path_factory.mktemp("go-hello"))


def test_go_blueprint_builds_and_answers(lam, fname, go_hello_zip):
    """The blueprint's bootstrap speaks the Runtime API itself and answers through boto3."""
    lam.create_function(FunctionName=fname, Runtime="provided.al2023", Handler="bootstrap", Role=ROLE,
                        Code={"ZipFile": go_hello_zip})
    out = lam.invoke(FunctionName=fname, Payload=json.dumps({"name": "gopher"}))
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, body
    assert body == {"message": "hello, gopher", "request_id": out["ResponseMetadata"]["RequestId"]}


def test_go_handler_error_shape(lam, fname, go_hello_zip):
    """A returned error comes back as {errorMessage, errorType}: here the event is not JSON of the right shape."""
    lam.create_function(FunctionName=fname, Runtime="provided.al2023", Handler="bootstrap", Role=ROLE,
                        Code={"ZipFile": go_hello_zip})
    out = lam.invoke(FunctionName=fname, Payload=json.dumps({"name": 5}))
    body = json.loads(out["Payload"].read())
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "UnmarshalTypeError" and "cannot unmarshal" in body["errorMessage"]
