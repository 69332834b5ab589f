"""Invoke through boto3: Python, Node.js and custom runtimes in real sandboxed environments."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import shutil
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"

PY_APP = r'''
import json, os, sys, time, uuid
ENV_ID = uuid.uuid4().hex
COUNT = {"n": 0}
print("init output")

def handler(event, context):
    COUNT["n"] += 1
    print("hello from python", json.dumps(event))
    return {
        "event": event, "request_id": context.aws_request_id, "function_name": context.function_name,
        "version": context.function_version, "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb, "remaining": context.get_remaining_time_in_millis(),
        "log_group": context.log_group_name, "log_stream": context.log_stream_name,
        "count": COUNT["n"], "env_id": ENV_ID, "cwd": os.getcwd(), "uid": os.getuid(),
        "environ": {k: os.environ.get(k) for k in (
            "AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "_HANDLER",
            "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "AWS_LAMBDA_RUNTIME_API",
            "USER_VAR", "TZ", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE")},
    }

def boom(event, context):
    raise ValueError("boom")

def slow_id(event, context):
    time.sleep(0.3)
    return {"event": event, "env_id": ENV_ID}

def sleepy(event, context):
    time.sleep(event.get("s", 5))
    return "slept"

def crash(event, context):
    print("about to crash", flush=True)
    os._exit(3)

def big(event, context):
    return "x" * (7 * 1024 * 1024)

def probe(event, context):
    out = {}
    try:
        open("/var/task/new.txt", "w")
        out["task_writable"] = True
    except OSError:
        out["task_writable"] = False
    with open("/tmp/probe.txt", "w") as f:
        f.write("ok")
    out["tmp_ok"] = open("/tmp/probe.txt").read() == "ok"
    out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    out["data_dir_visible"] = os.path.exists(event["data_dir"])
    import boto3
    out["boto3"] = boto3.__version__
    out["uid"] = os.getuid()
    out["certs_readable"] = os.access("/etc/ssl/certs", os.R_OK) and os.access("/etc/resolv.conf", os.R_OK)
    return out
'''

NODE_CJS = r'''
let count = 0;
exports.handler = async (event, context) => {
  count += 1;
  console.log("hello from node", JSON.stringify(event));
  return { event, requestId: context.awsRequestId, functionName: context.functionName,
           memory: context.memoryLimitInMB, count, remaining: context.getRemainingTimeInMillis(),
           cwd: process.cwd(), env: process.env.AWS_EXECUTION_ENV };
};
exports.boom = async () => { throw new TypeError("node boom"); };
exports.cb = (event, context, callback) => { callback(null, { via: "callback" }); };
'''

NODE_ESM = "export const handler = async (event) => ({ esm: true, event });\n"

SH_BOOTSTRAP = r'''#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS=$(mktemp)
  EVENT=$(curl -sS -D "$HEADERS" "$API/invocation/next")
  RID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  echo "shell got $EVENT"
  curl -sS -X POST "$API/invocation/$RID/response" -d "{\"shell\": $EVENT}" >/dev/null
done
'''


def create(lam, name, runtime, handler, files, modes=None, **kw):
    lam.create_function(FunctionName=name, Runtime=runtime, Handler=handler, Role=ROLE,
                        Code={"ZipFile": make_zip(files, modes)}, **kw)
    return name


def invoke(lam, name, payload=None, **kw):
    out = lam.invoke(FunctionName=name, Payload=json.dumps(payload if payload is not None else {}), **kw)
    body = out["Payload"].read()
    return out, json.loads(body) if body else None


def tail(out) -> str:
    return base64.b64decode(out["LogResult"]).decode()


@pytest.fixture(scope="module")
def pyfn(lam):
    return create(lam, "py-basic", "python3.11", "app.handler", {"app.py": PY_APP},
                  Environment={"Variables": {"USER_VAR": "u"}}, MemorySize=256)


def test_python_invoke_context_and_environment(lam, pyfn):
    out, body = invoke(lam, pyfn, {"a": 1})
    assert out["StatusCode"] == 200 and "FunctionError" not in out
    assert out["ExecutedVersion"] == "$LATEST"
    assert body["event"] == {"a": 1}
    assert body["request_id"] == out["ResponseMetadata"]["RequestId"]
    assert body["function_name"] == pyfn and body["version"] == "$LATEST"
    assert body["arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{pyfn}"
    assert body["memory"] == "256"
    assert 0 < body["remaining"] <= 3000
    assert body["log_group"] == f"/aws/lambda/{pyfn}"
    assert body["log_stream"].count("/") == 3 and "[$LATEST]" in body["log_stream"]
    env = body["environ"]
    assert env["AWS_REGION"] == "us-east-1" and env["AWS_LAMBDA_FUNCTION_NAME"] == pyfn
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256" and env["_HANDLER"] == "app.handler"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11" and env["USER_VAR"] == "u"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert body["cwd"] == env["LAMBDA_TASK_ROOT"]


def test_warm_reuse_and_tail_log(lam, pyfn):
    first, a = invoke(lam, pyfn, {"n": 1}, LogType="Tail")
    second, b = invoke(lam, pyfn, {"n": 2}, LogType="Tail")
    assert a["env_id"] == b["env_id"], "an idle environment is reused"
    assert b["count"] == a["count"] + 1
    log = tail(second)
    rid = second["ResponseMetadata"]["RequestId"]
    assert f"START RequestId: {rid} Version: $LATEST" in log
    assert 'hello from python {"n": 2}' in log
    assert f"END RequestId: {rid}" in log
    report = [line for line in log.splitlines() if line.startswith("REPORT")][0]
    assert f"REPORT RequestId: {rid}\tDuration: " in report
    assert "\tBilled Duration: " in report and "\tMemory Size: 256 MB\tMax Memory Used: " in report
    assert "Init Duration" not in report


def test_cold_start_reports_init_duration(lam, fname):
    create(lam, fname, "python3.11", "app.handler", {"app.py": PY_APP})
    out, _ = invoke(lam, fname, LogType="Tail")
    assert "\tInit Duration: " in tail(out)


def test_function_error(lam, fname):
    create(lam, fname, "python3.11", "app.boom", {"app.py": PY_APP})
    out, body = invoke(lam, fname)
    assert out["StatusCode"] == 200 and out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "boom"
    assert body["requestId"] == out["ResponseMetadata"]["RequestId"]
    assert any("app.py" in frame for frame in body["stackTrace"])


def test_import_error_and_missing_handler(lam, fname):
    create(lam, fname, "python3.11", "nomodule.handler", {"app.py": PY_APP})
    out, body = invoke(lam, fname)
    assert out["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'nomodule'" in body["errorMessage"]
    create(lam, fname + "-h", "python3.11", "app.nothere", {"app.py": PY_APP})
    out, body = invoke(lam, fname + "-h")
    assert body["errorType"] == "Runtime.HandlerNotFound"


def test_timeout_kills_and_next_invoke_gets_a_fresh_environment(lam, fname):
    create(lam, fname, "python3.11", "app.sleepy", {"app.py": PY_APP}, Timeout=1)
    started = time.monotonic()
    out, body = invoke(lam, fname, {"s": 10}, LogType="Tail")
    elapsed = time.monotonic() - started
    assert elapsed < 2.5
    rid = out["ResponseMetadata"]["RequestId"]
    assert out["FunctionError"] == "Unhandled"
    assert body == {"errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds"}
    assert "Task timed out after 1.00 seconds" in tail(out) and "Status: timeout" in tail(out)
    out, body = invoke(lam, fname, {"s": 0})
    assert body == "slept"


def test_crash_is_runtime_exit_error(lam, fname):
    create(lam, fname, "python3.11", "app.crash", {"app.py": PY_APP})
    out, body = invoke(lam, fname, LogType="Tail")
    rid = out["ResponseMetadata"]["RequestId"]
    assert body == {"errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: exit status 3"}
    assert "about to crash" in tail(out)
    out, body = invoke(lam, fname)
    assert body["errorType"] == "Runtime.ExitError", "the next invoke gets a fresh environment"


def test_response_too_large(lam, fname):
    create(lam, fname, "python3.11", "app.big", {"app.py": PY_APP}, MemorySize=512)
    out, body = invoke(lam, fname)
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge"


def test_event_and_dry_run(lam, pyfn):
    out = lam.invoke(FunctionName=pyfn, InvocationType="Event", Payload=b"{}")
    assert out["StatusCode"] == 202
    out = lam.invoke(FunctionName=pyfn, InvocationType="DryRun", Payload=b"{}")
    assert out["StatusCode"] == 204


def test_bad_payloads(lam, pyfn):
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=pyfn, Payload=b"{not json")
    assert err.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=pyfn, Payload=b'"' + b"x" * (6 * 1024 * 1024 + 10) + b'"')
    assert err.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_invoke_missing_function(lam):
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="does-not-exist", Payload=b"{}")


def test_sandbox_baseline(lam, server, fname):
    # import boto3 takes ~2.5 s of a 128 MB function's 0.072 vCPU: give it room within the 3 s timeout.
    create(lam, fname, "python3.11", "app.probe", {"app.py": PY_APP}, MemorySize=1024)
    _, body = invoke(lam, fname, {"data_dir": str(server.data_dir.resolve())})
    assert body["task_writable"] is False
    assert body["tmp_ok"] is True
    assert body["boto3"]
    assert body["data_dir_visible"] is False
    assert body["certs_readable"] is True, "HTTPS clients in functions need the CA bundle"
    if shutil.which("bwrap") and "sandbox: bwrap" in server.output():
        assert body["uid"] != 0
        assert len(body["pids"]) <= 3, body["pids"]


def test_concurrent_invokes_scale_out(lam, fname):
    create(lam, fname, "python3.11", "app.sleepy", {"app.py": PY_APP}, Timeout=10)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: invoke(lam, fname, {"s": 1.5}), range(4)))
    assert time.monotonic() - started < 4.5
    ids = {r[0]["ResponseMetadata"]["RequestId"] for r in results}
    assert len(ids) == 4 and all(r[1] == "slept" for r in results)


@pytest.mark.skipif(not shutil.which("node"), reason="no node on this host")
def test_node_handlers(lam, fname):
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    runtime = f"nodejs{version[1:].split('.')[0]}.x"
    files = {"index.js": NODE_CJS, "esm.mjs": NODE_ESM}
    create(lam, fname, runtime, "index.handler", files)
    out, body = invoke(lam, fname, {"k": "v"}, LogType="Tail")
    assert body["event"] == {"k": "v"} and body["requestId"] == out["ResponseMetadata"]["RequestId"]
    assert body["functionName"] == fname and body["memory"] == "128"
    assert body["env"] == f"AWS_Lambda_{runtime}"
    assert "hello from node" in tail(out)
    _, again = invoke(lam, fname)
    assert again["count"] == body["count"] + 1
    create(lam, fname + "-esm", runtime, "esm.handler", files)
    assert invoke(lam, fname + "-esm", {"x": 1})[1] == {"esm": True, "event": {"x": 1}}
    create(lam, fname + "-err", runtime, "index.boom", files)
    out, err = invoke(lam, fname + "-err")
    assert out["FunctionError"] == "Unhandled"
    assert err["errorType"] == "TypeError" and err["errorMessage"] == "node boom"
    create(lam, fname + "-cb", runtime, "index.cb", files)
    assert invoke(lam, fname + "-cb")[1] == {"via": "callback"}


@pytest.mark.skipif(not shutil.which("curl"), reason="no curl on this host")
def test_custom_runtime_shell_bootstrap(lam, fname):
    create(lam, fname, "provided.al2023", "ignored", {"bootstrap": SH_BOOTSTRAP}, {"bootstrap": 0o755})
    out, body = invoke(lam, fname, {"hi": 1}, LogType="Tail")
    assert body == {"shell": {"hi": 1}}
    assert "shell got" in tail(out)


def test_custom_runtime_without_bootstrap(lam, fname):
    create(lam, fname, "provided.al2023", "ignored", {"readme.txt": "no bootstrap"})
    out, body = invoke(lam, fname)
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.InvalidEntrypoint"


def test_burst_on_a_cold_function_takes_standbys_and_new_environments(lam, fname):
    """Many concurrent first invokes: some land on standby sandboxes, the rest on new ones; all answer."""
    create(lam, fname, "python3.11", "app.slow_id", {"app.py": PY_APP}, Timeout=30)
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda i: invoke(lam, fname, {"i": i}), range(24)))
    assert sorted(r[1]["event"]["i"] for r in results) == list(range(24))
    assert all("FunctionError" not in r[0] for r in results)
    assert len({r[1]["env_id"] for r in results}) > 1


VERSION_APP = "import sys\ndef handler(event, context):\n    return list(sys.version_info[:2])\n"


@pytest.mark.parametrize("version", ["3.9", "3.10", "3.11", "3.12", "3.13"])
def test_every_python_runtime_found_on_the_host_runs(lam, fname, version):
    """Each pythonX.Y runtime the host offers runs in its own interpreter, inside the sandbox."""
    try:
        create(lam, fname, f"python{version}", "app.handler", {"app.py": VERSION_APP})
    except lam.exceptions.InvalidParameterValueException as err:
        pytest.skip(str(err))
    out, body = invoke(lam, fname)
    assert "FunctionError" not in out, body
    assert body == [int(x) for x in version.split(".")]


NODE_CHANNEL = r"""
const fs = require('fs');
exports.handler = async () => {
  const unix = new Set(fs.readFileSync('/proc/self/net/unix', 'utf8').split('\n').slice(1)
    .map((line) => line.trim().split(/\s+/)[6]).filter(Boolean));
  const sockets = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target = '';
    try { target = fs.readlinkSync(`/proc/self/fd/${fd}`); } catch { continue; }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) sockets.push(unix.has(m[1]) ? 'unix' : 'other');
  }
  return { sockets, env: Object.keys(process.env).filter((k) => k.includes('LAMINA')) };
};
"""


@pytest.mark.skipif(not shutil.which("node"), reason="no node on this host")
def test_node_runtime_api_over_the_socket_pair(lam, fname):
    """lamina's Node.js runtime client takes the Unix socket pair it inherits (not loopback TCP) and
    hides its variable from the handler; the invocations flow over it."""
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    create(lam, fname, f"nodejs{version[1:].split('.')[0]}.x", "index.handler", {"index.js": NODE_CHANNEL})
    for _ in range(3):
        _, body = invoke(lam, fname)
        assert body["env"] == [] and "unix" in body["sockets"], body
        assert "other" not in body["sockets"], body  # no TCP connection to the Runtime API was needed
