"""LAMINA_LOOP_CPU: the event loop's thread sits on one CPU; the environments (forked by a zygote or
exec'd through bubblewrap) keep every CPU the server had."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from tests.conftest import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"
PY = "def handler(event, context):\n    return open('/proc/self/status').read()\n"
NODE = "exports.handler = async () => require('fs').readFileSync('/proc/self/status', 'utf8');\n"


def _cpus(status: str) -> set[int]:
    line = next(line for line in status.splitlines() if line.startswith("Cpus_allowed_list:"))
    out: set[int] = set()
    for part in line.split(":", 1)[1].strip().split(","):
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def _function_cpus(lam, name: str, runtime: str, files: dict[str, str]) -> set[int]:
    lam.create_function(FunctionName=name, Runtime=runtime, Handler="index.handler", Role=ROLE,
                        Code={"ZipFile": make_zip(files)})
    out = lam.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in out
    return _cpus(json.loads(out["Payload"].read()))


def test_the_loop_is_pinned_and_environments_are_not(server, lam, fname):
    allowed = set(os.sched_getaffinity(0))
    with open(f"/proc/{server.process.pid}/task/{server.process.pid}/status") as f:
        loop = _cpus(f.read())
    if len(allowed) >= 2:
        assert loop == {max(allowed)}
        assert f"event loop on CPU {max(allowed)}" in server.output()
    else:
        assert loop == allowed  # one CPU: nothing to choose
    assert _function_cpus(lam, fname, "python3.11", {"index.py": PY}) == allowed
    if shutil.which("node"):
        version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
        runtime = f"nodejs{version[1:].split('.')[0]}.x"
        assert _function_cpus(lam, fname + "-node", runtime, {"index.js": NODE}) == allowed


def test_the_setting_is_checked_before_the_server_starts(tmp_path):
    import sys

    env = dict(os.environ, LAMINA_LOOP_CPU="4096")
    out = subprocess.run([sys.executable, "-m", "lamina", "serve", "--port", "1", "--data-dir", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "LAMINA_LOOP_CPU must be auto, off or one of this process's CPUs" in out.stderr
