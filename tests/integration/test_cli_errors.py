"""The CLI's feedback: AWS error code + one-line hint on failure, progress lines for long steps."""

from __future__ import annotations

import json

from lamina import clihints
from tests.conftest import free_port
from tests.integration.test_workflow import lamina


def test_a_missing_function_prints_the_code_and_a_hint(server, tmp_path):
    out = lamina(server, "invoke", "no-such-function", cwd=tmp_path)
    assert out.returncode == 1
    assert "error: ResourceNotFoundException: Function not found: " in out.stderr
    assert "hint: check the name" in out.stderr
    assert "Traceback" not in out.stderr


def test_nobody_listening_says_so(tmp_path):
    class Nowhere:
        url = f"http://127.0.0.1:{free_port()}"

    out = lamina(Nowhere, "invoke", "f", cwd=tmp_path)
    assert out.returncode == 1
    assert "error: cannot connect to" in out.stderr and "lamina serve" in out.stderr
    assert "Traceback" not in out.stderr


def test_deploy_reports_its_steps_with_sizes_and_times(server, tmp_path, fname):
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text("def handler(e, c):\n    return 1\n")
    (fn / "data.bin").write_bytes(b"x" * 300_000)
    (fn / "lamina.json").write_text(json.dumps({"FunctionName": fname, "Runtime": "python3.11",
                                                "Handler": "app.handler"}))
    out = lamina(server, "deploy", str(fn), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"  ✓ package {fn} 2 files, 293.0 KB → " in out.stderr
    assert f"  ✓ create {fname}: upload " in out.stderr
    spec = json.loads((fn / "lamina.json").read_text())
    (fn / "lamina.json").write_text(json.dumps(spec | {"Runtime": "cobol85"}))  # refused by lamina
    out = lamina(server, "deploy", str(fn), cwd=tmp_path)
    assert out.returncode == 1
    assert "error: InvalidParameterValueException: " in out.stderr and "cobol85" in out.stderr
    assert f"hint: {clihints.HINTS['InvalidParameterValueException']}" in out.stderr
    (fn / "lamina.json").write_text(json.dumps(spec | {"MemorySize": 1}))  # refused by botocore
    out = lamina(server, "deploy", str(fn), cwd=tmp_path)
    assert out.returncode == 1
    assert "error: invalid request: " in out.stderr and "MemorySize" in out.stderr and "Traceback" not in out.stderr
