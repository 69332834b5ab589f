"""LAMINA_LOOP_CPU: the event loop's thread sits on one CPU; the environments (forked by a zygote or
exec'd through bubblewrap) keep every CPU the server had — or every one but the loop's, while
LAMINA_RESERVE_LOOP_CPU keeps them off it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import make_zip
from tests.integration.conftest import serving

ROLE = "arn:aws:iam::000000000000:role/x"
PY = ("def handler(event, context):\n"
      "    return [open('/proc/self/status').read(), open('/proc/self/stat').read()]\n")
NODE = ("const fs = require('fs');\n"
        "exports.handler = async () => [fs.readFileSync('/proc/self/status', 'utf8'), "
        "fs.readFileSync('/proc/self/stat', 'utf8')];\n")


def _cpus(status: str) -> set[int]:
    line = next(line for line in status.splitlines() if line.startswith("Cpus_allowed_list:"))
    out: set[int] = set()
    for part in line.split(":", 1)[1].strip().split(","):
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def _nice(stat: str) -> int:
    return int(stat.rsplit(")", 1)[1].split()[16])


def _function_placement(lam, name: str, runtime: str, files: dict[str, str]) -> tuple[set[int], int]:
    lam.create_function(FunctionName=name, Runtime=runtime, Handler="index.handler", Role=ROLE,
                        Code={"ZipFile": make_zip(files)})
    out = lam.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in out
    status, stat = json.loads(out["Payload"].read())
    return _cpus(status), _nice(stat)


def test_the_loop_is_placed_and_environments_are_not(server, lam, fname):
    allowed, nice = set(os.sched_getaffinity(0)), os.getpriority(os.PRIO_PROCESS, 0)
    task = f"/proc/{server.process.pid}/task/{server.process.pid}"
    with open(f"{task}/status") as status, open(f"{task}/stat") as stat:
        loop = (_cpus(status.read()), _nice(stat.read()))
    expected = max(allowed) if len(allowed) >= 2 else None  # one CPU: nothing to choose
    raised = os.geteuid() == 0 and nice > -5  # LAMINA_LOOP_NICE's default, -5, needs CAP_SYS_NICE
    assert loop == ({expected} if expected is not None else allowed, -5 if raised else nice)
    if expected is not None or raised:
        assert f"event loop: CPU {'any' if expected is None else expected}" in server.output()
    # never the loop's pin or nice; every CPU, or (LAMINA_RESERVE_LOOP_CPU=auto, the shared server just
    # busy with an earlier test) every CPU but the loop's
    placements = [(allowed, nice), (allowed - {expected}, nice)]
    assert _function_placement(lam, fname, "python3.11", {"index.py": PY}) in placements
    if shutil.which("node"):
        assert _function_placement(lam, fname + "-node", _node_runtime(), {"index.js": NODE}) in placements


def _node_runtime() -> str:
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    return f"nodejs{version[1:].split('.')[0]}.x"


@pytest.mark.parametrize("mode", ["on", "off"])
def test_functions_are_kept_off_the_loops_cpu_when_asked(tmp_path_factory, mode):
    allowed = set(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("one CPU: the loop is not pinned")
    with serving(tmp_path_factory, f"reserve-{mode}", {"LAMINA_RESERVE_LOOP_CPU": mode}) as srv:
        if "sandbox: bwrap" not in srv.output() or os.geteuid() != 0:
            pytest.skip("the environments' cpuset needs the isolated sandbox's cgroups (root)")
        lam = srv.client()
        expected = allowed - {max(allowed)} if mode == "on" else allowed
        assert ("kept from functions" in srv.output()) == (mode == "on")
        assert _function_placement(lam, "py", "python3.11", {"index.py": PY})[0] == expected
        if shutil.which("node"):
            assert _function_placement(lam, "node", _node_runtime(), {"index.js": NODE})[0] == expected


def test_the_setting_is_checked_before_the_server_starts(tmp_path):
    import sys

    env = dict(os.environ, LAMINA_LOOP_CPU="4096")
    out = subprocess.run([sys.executable, "-m", "lamina", "serve", "--port", "1", "--data-dir", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "LAMINA_LOOP_CPU must be auto, off or one of this process's CPUs" in out.stderr
