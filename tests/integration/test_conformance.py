"""One conformance suite for every runtime this host can run: the same scenarios, the same expectations.

Each runtime gets an app with five handlers (echo, ctx, boom, env, sleep) written in its language; a
handler name the app does not have is the init-error scenario. Runtimes missing here are skipped.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lamina.runtimes.registry import RuntimeRegistry
from tests.conftest import make_zip
from tests.integration.test_go import BLUEPRINT, build_go
from tests.integration.test_java import as_jar, compile_java

ROLE = "arn:aws:iam::000000000000:role/x"
REGISTRY = RuntimeRegistry.discover()

PYTHON = r'''
import os, time
def echo(event, context):
    return event
def ctx(event, context):
    return {"request_id": context.aws_request_id, "function_name": context.function_name,
            "version": context.function_version, "arn": context.invoked_function_arn,
            "memory": context.memory_limit_in_mb, "remaining": context.get_remaining_time_in_millis(),
            "log_group": context.log_group_name, "log_stream": context.log_stream_name}
def boom(event, context):
    raise ValueError("boom")
def env(event, context):
    return {name: os.environ.get(name) for name in event["names"]}
def sleep(event, context):
    time.sleep(event["s"])
    return "slept"
N = [0]
def count(event, context):
    N[0] += 1
    print(f"count-line {N[0]}")
    path = "/tmp/" + context.function_name
    with open(path, "a") as f:
        f.write("x")
    return {"n": N[0], "tmp": len(open(path).read())}
'''

NODE = r'''
exports.echo = async (event) => event;
exports.ctx = async (event, context) => ({
  request_id: context.awsRequestId, function_name: context.functionName, version: context.functionVersion,
  arn: context.invokedFunctionArn, memory: context.memoryLimitInMB, remaining: context.getRemainingTimeInMillis(),
  log_group: context.logGroupName, log_stream: context.logStreamName,
});
exports.boom = async () => { throw new TypeError('boom'); };
exports.env = async (event) => Object.fromEntries(event.names.map((n) => [n, process.env[n] ?? null]));
exports.sleep = async (event) => { await new Promise((r) => setTimeout(r, event.s * 1000)); return 'slept'; };
const fs = require('fs');
let n = 0;
exports.count = async (event, context) => {
  n += 1;
  console.log(`count-line ${n}`);
  const path = `/tmp/${context.functionName}`;
  fs.appendFileSync(path, 'x');
  return { n, tmp: fs.readFileSync(path, 'utf8').length };
};
'''

RUBY = r'''
def echo(event:, context:)
  event
end

def ctx(event:, context:)
  { "request_id" => context.aws_request_id, "function_name" => context.function_name,
    "version" => context.function_version, "arn" => context.invoked_function_arn,
    "memory" => context.memory_limit_in_mb, "remaining" => context.get_remaining_time_in_millis,
    "log_group" => context.log_group_name, "log_stream" => context.log_stream_name }
end

def boom(event:, context:)
  raise ArgumentError, "boom"
end

def env(event:, context:)
  event["names"].to_h { |name| [name, ENV[name]] }
end

def sleep(event:, context:)
  Kernel.sleep(event["s"])
  "slept"
end

N = [0]

def count(event:, context:)
  N[0] += 1
  puts "count-line #{N[0]}"
  path = "/tmp/#{context.function_name}"
  File.write(path, "x", mode: "a")
  { "n" => N[0], "tmp" => File.read(path).size }
end
'''

JAVA = r'''
package conformance;

import com.amazonaws.services.lambda.runtime.Context;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public class App {
    public Object echo(Object event) { return event; }

    public Map<String, Object> ctx(Map<String, Object> event, Context context) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("request_id", context.getAwsRequestId());
        out.put("function_name", context.getFunctionName());
        out.put("version", context.getFunctionVersion());
        out.put("arn", context.getInvokedFunctionArn());
        out.put("memory", context.getMemoryLimitInMB());
        out.put("remaining", context.getRemainingTimeInMillis());
        out.put("log_group", context.getLogGroupName());
        out.put("log_stream", context.getLogStreamName());
        return out;
    }

    public Object boom(Object event) { throw new IllegalArgumentException("boom"); }

    public Map<String, Object> env(Map<String, List<String>> event) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (String name : event.get("names")) out.put(name, System.getenv(name));
        return out;
    }

    public String sleep(Map<String, Number> event) throws InterruptedException {
        Thread.sleep((long) (event.get("s").doubleValue() * 1000));
        return "slept";
    }

    private static int n;

    public Map<String, Object> count(Object event, Context context) throws java.io.IOException {
        n++;
        System.out.println("count-line " + n);
        java.nio.file.Path path = java.nio.file.Path.of("/tmp", context.getFunctionName());
        java.nio.file.Files.writeString(path, "x", java.nio.file.StandardOpenOption.CREATE,
                java.nio.file.StandardOpenOption.APPEND);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("n", n);
        out.put("tmp", java.nio.file.Files.readString(path).length());
        return out;
    }
}
'''

GO = r'''
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	handlers := map[string]Handler{
		"echo": func(ctx *Context, event json.RawMessage) (any, error) { return event, nil },
		"ctx": func(ctx *Context, event json.RawMessage) (any, error) {
			return map[string]any{"request_id": ctx.AwsRequestID, "function_name": ctx.FunctionName,
				"version": ctx.FunctionVersion, "arn": ctx.InvokedFunctionArn, "memory": ctx.MemoryLimitInMB,
				"remaining": ctx.RemainingTime().Milliseconds(), "log_group": ctx.LogGroupName,
				"log_stream": ctx.LogStreamName}, nil
		},
		"boom": func(ctx *Context, event json.RawMessage) (any, error) { return nil, errors.New("boom") },
		"env": func(ctx *Context, event json.RawMessage) (any, error) {
			var in struct{ Names []string }
			json.Unmarshal(event, &in)
			out := map[string]any{}
			for _, n := range in.Names {
				if v, ok := os.LookupEnv(n); ok {
					out[n] = v
				} else {
					out[n] = nil
				}
			}
			return out, nil
		},
		"sleep": func(ctx *Context, event json.RawMessage) (any, error) {
			var in struct{ S float64 }
			json.Unmarshal(event, &in)
			time.Sleep(time.Duration(in.S * float64(time.Second)))
			return "slept", nil
		},
	}
	n := 0
	handlers["count"] = func(ctx *Context, event json.RawMessage) (any, error) {
		n++
		fmt.Printf("count-line %d\n", n)
		path := "/tmp/" + ctx.FunctionName
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		f.WriteString("x")
		f.Close()
		data, _ := os.ReadFile(path)
		return map[string]any{"n": n, "tmp": len(data)}, nil
	}
	handler, ok := handlers[os.Getenv("_HANDLER")]
	if !ok {
		body, _ := json.Marshal(map[string]any{"errorMessage": "no handler " + os.Getenv("_HANDLER"),
			"errorType": "Runtime.HandlerNotFound"})
		url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/init/error"
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.HandlerNotFound")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		os.Exit(1)
	}
	Start(handler)
}
'''


@dataclasses.dataclass(frozen=True)
class Lang:
    """How one runtime family is packaged and what its init error is called."""

    name: str
    runtime: Callable[[], str | None]
    package: Callable[[Path], bytes]
    handler: Callable[[str], str]
    init_error_type: str


def _family(family: str, prefer: str | None = None) -> Callable[[], str | None]:
    def pick() -> str | None:
        if prefer and REGISTRY.get(prefer):
            return prefer
        found = [r.id for r in REGISTRY.all() if r.family == family]
        return found[0] if found else None
    return pick


def _exactly(runtime_id: str) -> Callable[[], str | None]:
    return lambda: runtime_id if REGISTRY.get(runtime_id) else None


def _java_package(tmp: Path) -> bytes:
    if shutil.which("javac") is None:
        pytest.skip("no javac")
    return as_jar(compile_java(tmp, {"conformance/App.java": JAVA}))


LANGS = [
    Lang("python", _family("python", "python3.11"), lambda tmp: make_zip({"app.py": PYTHON}),
         lambda h: f"app.{h}", "Runtime.HandlerNotFound"),
    Lang("nodejs", _family("nodejs"), lambda tmp: make_zip({"app.js": NODE}),
         lambda h: f"app.{h}", "Runtime.HandlerNotFound"),
    # The other Node.js majors, from npm's node@NN binaries (`make install`).
    *(Lang(f"nodejs{major}", _exactly(f"nodejs{major}.x"), lambda tmp: make_zip({"app.js": NODE}),
           lambda h: f"app.{h}", "Runtime.HandlerNotFound") for major in ("18", "22", "24")),
    Lang("ruby", _family("ruby"), lambda tmp: make_zip({"app.rb": RUBY}),
         lambda h: f"app.{h}", "Init<NoMethodError>"),
    Lang("java", _family("java"), _java_package,
         lambda h: f"conformance.App::{h}", "java.lang.NoSuchMethodException"),
    Lang("go", lambda: "provided.al2023", lambda tmp: build_go(BLUEPRINT, tmp, GO),
         lambda h: h, "Runtime.HandlerNotFound"),
]


@pytest.fixture(scope="module", params=LANGS, ids=[lang.name for lang in LANGS])
def lang(request, tmp_path_factory):
    spec: Lang = request.param
    runtime = spec.runtime()
    if runtime is None:
        pytest.skip(f"no {spec.name} runtime on this host")
    return spec, runtime, spec.package(tmp_path_factory.mktemp(spec.name))


@pytest.fixture(autouse=True)
def _delete_function_after(lam, fname):
    """Each test's function is deleted afterwards: the shared server's listings stay short."""
    yield
    try:
        lam.delete_function(FunctionName=fname)
    except lam.exceptions.ResourceNotFoundException:
        pass


def deploy(lam, name: str, lang, handler: str, **kw) -> None:
    spec, runtime, code = lang
    lam.create_function(FunctionName=name, Runtime=runtime, Handler=spec.handler(handler), Role=ROLE,
                        MemorySize=512, Code={"ZipFile": code}, **kw)


def invoke(lam, name: str, payload) -> tuple[dict, object]:
    out = lam.invoke(FunctionName=name, Payload=json.dumps(payload))
    return out, json.loads(out["Payload"].read())


def test_echo(lam, fname, lang):
    """The event comes back unchanged, nested values and all."""
    deploy(lam, fname, lang, "echo")
    event = {"s": "x", "n": 1, "f": 2.5, "b": True, "z": None, "l": [1, "two", {"three": 3}], "u": "é✓"}
    out, body = invoke(lam, fname, event)
    assert "FunctionError" not in out, body
    assert body == event


def test_context_fields(lam, fname, lang):
    """The context carries the request id, names, ARN, memory, log names and remaining time."""
    deploy(lam, fname, lang, "ctx", Timeout=5)
    out, body = invoke(lam, fname, {})
    assert "FunctionError" not in out, body
    assert body["request_id"] == out["ResponseMetadata"]["RequestId"]
    assert body["function_name"] == fname and body["version"] == "$LATEST"
    assert body["arn"].endswith(f":function:{fname}")
    assert str(body["memory"]) == "512"
    assert 0 < body["remaining"] <= 5000
    assert body["log_group"] == f"/aws/lambda/{fname}" and body["log_stream"]


def test_raised_error_shape(lam, fname, lang):
    """An unhandled error reaches the caller as errorMessage + errorType, flagged Unhandled."""
    deploy(lam, fname, lang, "boom")
    out, body = invoke(lam, fname, {})
    assert out["FunctionError"] == "Unhandled"
    assert "boom" in body["errorMessage"] and body["errorType"]


def test_init_error(lam, fname, lang):
    """A handler that does not exist fails init with the runtime's own error type."""
    spec = lang[0]
    deploy(lam, fname, lang, "missing")
    out, body = invoke(lam, fname, {})
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == spec.init_error_type, body


def test_timeout(lam, fname, lang):
    """A handler running past Timeout is stopped and answered Sandbox.Timedout."""
    deploy(lam, fname, lang, "sleep", Timeout=1)
    started = time.monotonic()
    out, body = invoke(lam, fname, {"s": 5})
    assert time.monotonic() - started < 4.5
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]


def test_environment_variables(lam, fname, lang):
    """The function's variables and Lambda's reserved ones are in the process environment."""
    deploy(lam, fname, lang, "env", Environment={"Variables": {"CONF_VAR": "conf-value"}})
    names = ["CONF_VAR", "AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION", "LAMBDA_TASK_ROOT", "_HANDLER"]
    out, body = invoke(lam, fname, {"names": names})
    assert "FunctionError" not in out, body
    assert body["CONF_VAR"] == "conf-value" and body["AWS_LAMBDA_FUNCTION_NAME"] == fname
    assert body["AWS_REGION"] == "us-east-1" and body["LAMBDA_TASK_ROOT"]
    assert body["_HANDLER"] == lang[0].handler("env")


def test_logs_tmp_and_warm_reuse(lam, fname, lang):
    """Output lands between START and REPORT; a warm environment keeps module state and /tmp."""
    deploy(lam, fname, lang, "count")
    bodies, logs = [], []
    for _ in range(2):
        out = lam.invoke(FunctionName=fname, Payload=b"{}", LogType="Tail")
        bodies.append(json.loads(out["Payload"].read()))
        logs.append(base64.b64decode(out["LogResult"]).decode())
        assert "FunctionError" not in out, bodies[-1]
    assert bodies == [{"n": 1, "tmp": 1}, {"n": 2, "tmp": 2}]
    log = logs[1]
    assert log.index("START RequestId") < log.index("count-line 2") < log.index("END RequestId") < log.index("REPORT")


def test_large_payload(lam, fname, lang):
    """A 5 MB event goes in and comes back out whole."""
    deploy(lam, fname, lang, "echo")
    event = {"blob": "x" * (5 * 1024 * 1024)}
    out, body = invoke(lam, fname, event)
    assert "FunctionError" not in out, str(body)[:300]
    assert body == event
