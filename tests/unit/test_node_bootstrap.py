"""lamina's Node.js runtime client (src/lamina/runtimes/node/bootstrap.mjs), driven for real.

A fake Runtime API in a thread hands out scripted invocations on /invocation/next and records
every POST together with what the Node process had written to stdout at that moment; the
bootstrap runs as `node bootstrap.mjs` with a temporary task root holding the handler files.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import queue
import re
import select
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from lamina.runtimes.registry import NODE_BOOTSTRAP

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not on PATH")

PREFIX = "/2018-06-01/runtime"
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


# ------------------------------------------------------------------------------------------------
# Fake Runtime API


@dataclasses.dataclass
class Invocation:
    event: object = dataclasses.field(default_factory=dict)
    request_id: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    raw_body: bytes | None = None  # sent instead of json.dumps(event)


@dataclasses.dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: bytes
    stdout: str  # everything the runtime had written to stdout when the POST arrived

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def kind(self) -> str:
        return self.path.rsplit("/", 1)[-1]  # response | error (init/error -> "error" too)


class PipeCollector:
    """Reads a child's pipe in the background; read_now() returns everything written so far.

    Reading happens under a lock with a non-blocking fd, so a snapshot taken while serving a POST
    holds every byte the child wrote before sending that POST.
    """

    def __init__(self, pipe) -> None:
        self._pipe = pipe
        self._fd = pipe.fileno()
        os.set_blocking(self._fd, False)
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._eof = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._eof:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                self._eof = True
            else:
                self._chunks.append(chunk)

    def _run(self) -> None:
        while not self._eof:
            select.select([self._fd], [], [], 0.05)
            with self._lock:
                self._drain()

    def read_now(self) -> str:
        with self._lock:
            self._drain()
            return b"".join(self._chunks).decode("utf-8", "replace")

    def close(self) -> str:
        self._thread.join(timeout=10)
        text = self.read_now()
        self._pipe.close()
        return text


class FakeRuntimeApi:
    def __init__(self) -> None:
        self.invocations: queue.Queue[Invocation] = queue.Queue()
        self.posts: list[Post] = []
        self.next_calls = 0
        self.stdout: PipeCollector | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404, b"{}")
                with api._cond:
                    api.next_calls += 1
                    api._cond.notify_all()
                while True:
                    try:
                        inv = api.invocations.get(timeout=0.05)
                        break
                    except queue.Empty:
                        if api._stop.is_set():  # the runtime was stopped: just hang up
                            self.close_connection = True
                            return
                body = inv.raw_body if inv.raw_body is not None else json.dumps(inv.event).encode()
                headers = {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30_000),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
                    **inv.headers,
                }
                self._reply(200, body, headers)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stdout = api.stdout.read_now() if api.stdout else ""
                post = Post(self.path, {k.lower(): v for k, v in self.headers.items()}, body, stdout)
                self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
                with api._cond:
                    api.posts.append(post)
                    api._cond.notify_all()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def wait_for_posts(self, count: int, timeout: float = 15) -> list[Post]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.posts) >= count, timeout):
                raise AssertionError(f"expected {count} posts, got {len(self.posts)}: {self.posts[-3:]!r}")
            return list(self.posts)

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@dataclasses.dataclass
class Run:
    posts: list[Post]
    stdout: str
    stderr: str
    returncode: int | None


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def run_node(
    tmp_path: Path,
    files: dict[str, str],
    handler: str,
    invocations: list[Invocation] = (),
    *,
    env: dict[str, str] | None = None,
    expect_posts: int | None = None,
    expect_exit: bool = False,
    bootstrap: Path = NODE_BOOTSTRAP,
) -> Run:
    """Run the bootstrap against a fake Runtime API until `expect_posts` POSTs (default: one per
    invocation) arrived, or until it exits by itself (`expect_exit`)."""
    task = tmp_path / "task"
    task.mkdir(exist_ok=True)
    write_files(task, files)
    api = FakeRuntimeApi()
    for n, inv in enumerate(invocations):
        inv.request_id = inv.request_id or f"req-{n + 1}"
        api.invocations.put(inv)
    proc_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": str(task),
        "LAMBDA_RUNTIME_DIR": str(NODE_BOOTSTRAP.parent),
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "AWS_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_nodejs20.x",
        "NODE_PATH": str(NODE_BOOTSTRAP.parent / "node_modules"),
        **(env or {}),
    }
    proc = subprocess.Popen(
        [NODE, str(bootstrap)],
        cwd=task,
        env=proc_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    api.stdout = PipeCollector(proc.stdout)
    stderr = PipeCollector(proc.stderr)
    returncode = None
    try:
        if expect_exit:
            returncode = proc.wait(timeout=15)
        else:
            api.wait_for_posts(len(invocations) if expect_posts is None else expect_posts)
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=10)
        out, err = api.stdout.close(), stderr.close()
        api.close()
    return Run(list(api.posts), out, err, returncode)


def results(run: Run) -> list[object]:
    return [post.json for post in run.posts]


# ------------------------------------------------------------------------------------------------
# Handler styles


def test_async_handler_result_cjs_index_js(tmp_path):
    files = {"index.js": "exports.handler = async (event) => ({ got: event, n: event.n + 1 });"}
    run = run_node(tmp_path, files, "index.handler", [Invocation({"n": 1}), Invocation({"n": 41})])
    assert [p.path for p in run.posts] == [
        f"{PREFIX}/invocation/req-1/response",
        f"{PREFIX}/invocation/req-2/response",
    ]
    assert results(run) == [{"got": {"n": 1}, "n": 2}, {"got": {"n": 41}, "n": 42}]
    assert run.posts[0].headers["content-type"] == "application/json"


def test_sync_return_value_and_undefined_is_null(tmp_path):
    files = {
        "app.js": "exports.value = (event) => event.x * 2;\n"
        "exports.nothing = () => { /* returns undefined */ };\n"
    }
    run = run_node(tmp_path, files, "app.value", [Invocation({"x": 21})])
    assert run.posts[0].kind == "response" and results(run) == [42]
    run = run_node(tmp_path, files, "app.nothing", [Invocation({})])
    assert run.posts[0].body == b"null"


def test_callback_style_waits_for_empty_event_loop(tmp_path):
    files = {
        "index.js": """
exports.handler = (event, context, callback) => {
  setTimeout(() => console.log('timer fired'), 100);
  callback(null, { ok: true, waits: context.callbackWaitsForEmptyEventLoop });
};"""
    }
    run = run_node(tmp_path, files, "index.handler", [Invocation({})])
    assert results(run) == [{"ok": True, "waits": True}]
    assert "timer fired" in run.posts[0].stdout  # answered only once the loop was empty


def test_callback_style_without_waiting(tmp_path):
    files = {
        "index.js": """
exports.handler = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  setTimeout(() => console.log('late timer'), 3000).unref();
  callback(null, 'fast');
  callback(null, 'ignored second call');
};"""
    }
    run = run_node(tmp_path, files, "index.handler", [Invocation({}), Invocation({})])
    assert results(run) == ["fast", "fast"]
    assert "late timer" not in run.posts[0].stdout


def test_callback_error_and_legacy_context_methods(tmp_path):
    files = {
        "index.js": """
exports.handler = (event, context, callback) => {
  if (event.mode === 'cb-error') return callback(new TypeError('bad input'));
  if (event.mode === 'succeed') return context.succeed({ via: 'succeed' });
  if (event.mode === 'fail') return context.fail(new Error('via fail'));
  if (event.mode === 'done') return context.done(null, 'via done');
  // never calls back: the RIC answers null once the loop is empty
};"""
    }
    modes = ["cb-error", "succeed", "fail", "done", "silent"]
    run = run_node(tmp_path, files, "index.handler", [Invocation({"mode": m}) for m in modes])
    kinds = [p.kind for p in run.posts]
    assert kinds == ["error", "response", "error", "response", "response"]
    got = results(run)
    assert got[0]["errorType"] == "TypeError" and got[0]["errorMessage"] == "bad input"
    assert got[1] == {"via": "succeed"}
    assert got[2]["errorMessage"] == "via fail"
    assert got[3] == "via done"
    assert got[4] is None


def test_async_handler_that_never_settles_fails_with_nodejs_exit(tmp_path):
    files = {"index.js": "exports.handler = async () => new Promise(() => {});"}
    run = run_node(tmp_path, files, "index.handler", [Invocation({}), Invocation({})])
    assert [p.kind for p in run.posts] == ["error", "error"]
    assert run.posts[0].json["errorType"] == "Runtime.NodeJsExit"
    assert run.posts[0].json["errorMessage"] == "Error: Runtime exited without providing a reason"


# ------------------------------------------------------------------------------------------------
# Module resolution


def test_esm_mjs_handler(tmp_path):
    files = {
        "index.mjs": "const boot = await Promise.resolve('tla');\n"
        "export const handler = async (event) => ({ esm: typeof require === 'undefined', boot, event });"
    }
    run = run_node(tmp_path, files, "index.handler", [Invocation({"a": 1})])
    assert results(run) == [{"esm": True, "boot": "tla", "event": {"a": 1}}]


def test_js_in_type_module_package_and_nested_path(tmp_path):
    files = {
        "package.json": json.dumps({"name": "fn", "type": "module"}),
        "src/app.js": "import { helper } from './lib.js';\n"
        "export const handler = async () => ({ esm: typeof module === 'undefined', helper: helper() });",
        "src/lib.js": "export const helper = () => 'from lib';",
    }
    run = run_node(tmp_path, files, "src/app.handler", [Invocation({})])
    assert results(run) == [{"esm": True, "helper": "from lib"}]


def test_js_without_type_module_is_commonjs_and_cjs_extension(tmp_path):
    files = {
        "package.json": json.dumps({"name": "fn"}),
        "index.js": "exports.handler = async () => ({ cjs: typeof module === 'object', file: __filename });",
        "other.cjs": "module.exports.run = async () => 'cjs file';",
    }
    run = run_node(tmp_path, files, "index.handler", [Invocation({})])
    assert results(run) == [{"cjs": True, "file": str(tmp_path / "task" / "index.js")}]
    run = run_node(tmp_path, files, "other.run", [Invocation({})])
    assert results(run) == ["cjs file"]


def test_handler_split_at_last_dot(tmp_path):
    files = {"my.module.js": "exports.handler = async () => 'dotted file name';"}
    run = run_node(tmp_path, files, "my.module.handler", [Invocation({})])
    assert results(run) == ["dotted file name"]


# ------------------------------------------------------------------------------------------------
# Context and headers


def test_context_fields_and_trace_header(tmp_path):
    files = {
        "index.js": """
exports.handler = async (event, context) => ({
  awsRequestId: context.awsRequestId,
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  invokedFunctionArn: context.invokedFunctionArn,
  memoryLimitInMB: context.memoryLimitInMB,
  logGroupName: context.logGroupName,
  logStreamName: context.logStreamName,
  identity: context.identity ?? null,
  clientContext: context.clientContext ?? null,
  remaining: context.getRemainingTimeInMillis(),
  waits: context.callbackWaitsForEmptyEventLoop,
  legacy: [typeof context.succeed, typeof context.fail, typeof context.done],
  trace: process.env._X_AMZN_TRACE_ID ?? null,
});"""
    }
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    client_context = {"client": {"app_title": "app"}, "custom": {"k": "v"}, "env": {}}
    first = Invocation(
        {},
        request_id="8476a536-e9f4-11e8-9739-2dfe598c3fcd",
        headers={
            "Lambda-Runtime-Trace-Id": trace,
            "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
            "Lambda-Runtime-Client-Context": json.dumps(client_context),
        },
    )
    run = run_node(tmp_path, files, "index.handler", [first, Invocation({})])
    got, second = results(run)
    remaining = got.pop("remaining")
    assert 20_000 < remaining <= 30_000
    assert got == {
        "awsRequestId": "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
        "functionName": "fn",
        "functionVersion": "$LATEST",
        "invokedFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "memoryLimitInMB": "256",
        "logGroupName": "/aws/lambda/fn",
        "logStreamName": "2024/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "identity": identity,
        "clientContext": client_context,
        "waits": True,
        "legacy": ["function", "function", "function"],
        "trace": trace,
    }
    assert run.posts[0].path == f"{PREFIX}/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/response"
    # No trace header on the next invoke: the variable is removed, not left stale.
    assert second["trace"] is None and second["identity"] is None and second["clientContext"] is None


# ------------------------------------------------------------------------------------------------
# Invocation errors


def test_thrown_error_shape_and_invoke_error_log(tmp_path):
    files = {
        "index.js": """
class ValidationError extends Error { constructor(m) { super(m); this.name = 'ValidationError'; this.code = 'E42'; } }
exports.handler = async (event) => {
  if (event.kind === 'error') throw new Error('boom');
  if (event.kind === 'custom') throw new ValidationError('invalid thing');
  if (event.kind === 'string') throw 'plain string';
  if (event.kind === 'object') throw { some: 'object' };
  return 'unreachable';
};"""
    }
    kinds = ["error", "custom", "string", "object"]
    run = run_node(tmp_path, files, "index.handler", [Invocation({"kind": k}) for k in kinds])
    assert all(p.kind == "error" and "/invocation/req-" in p.path for p in run.posts)
    assert all(p.headers["content-type"] == "application/json" for p in run.posts)
    boom, custom, string, obj = results(run)
    assert list(boom) == ["errorType", "errorMessage", "trace"]
    assert boom["errorType"] == "Error" and boom["errorMessage"] == "boom"
    assert boom["trace"][0] == "Error: boom" and "index.js" in boom["trace"][1]
    assert custom["errorType"] == "ValidationError" and custom["errorMessage"] == "invalid thing"
    assert string == {"errorType": "string", "errorMessage": "plain string", "trace": []}
    assert obj == {"errorType": "object", "errorMessage": "[object Object]", "trace": []}

    line = next(l for l in run.stdout.splitlines() if "\treq-1\t" in l)
    m = re.fullmatch(rf"({ISO})\treq-1\tERROR\tInvoke Error \t(\{{.*\}})", line)
    assert m, line
    logged = json.loads(m.group(2))
    assert logged["errorType"] == "Error" and logged["errorMessage"] == "boom"
    assert logged["stack"][0] == "Error: boom"
    custom_line = next(l for l in run.stdout.splitlines() if "\treq-2\tERROR" in l)
    assert json.loads(custom_line.split("\t", 4)[4])["code"] == "E42"


def test_unparseable_event_is_an_unmarshal_error_and_the_loop_continues(tmp_path):
    files = {"index.js": "exports.handler = async (e) => e;"}
    run = run_node(tmp_path, files, "index.handler", [Invocation(raw_body=b"{not json"), Invocation([1, 2])])
    assert [p.kind for p in run.posts] == ["error", "response"]
    assert run.posts[0].json["errorType"] == "Runtime.UnmarshalError"
    assert results(run)[1] == [1, 2]


def test_unserializable_result_is_an_error(tmp_path):
    files = {"index.js": "exports.handler = async () => { const a = {}; a.self = a; return a; };"}
    run = run_node(tmp_path, files, "index.handler", [Invocation({})])
    assert run.posts[0].kind == "error"
    assert run.posts[0].json["errorMessage"] == "Unable to stringify response body"


def test_uncaught_exception_during_invoke_posts_error_then_exits_129(tmp_path):
    files = {"index.js": "exports.handler = async () => { setTimeout(() => { throw new RangeError('async boom'); }, 10); return new Promise(() => {}); };"}
    run = run_node(tmp_path, files, "index.handler", [Invocation({})], expect_exit=True)
    assert run.returncode == 129
    assert [p.path for p in run.posts] == [f"{PREFIX}/invocation/req-1/error"]
    assert run.posts[0].json["errorType"] == "RangeError"
    assert run.posts[0].json["errorMessage"] == "async boom"
    assert re.search(rf"{ISO}\treq-1\tERROR\tUncaught Exception \t\{{", run.stdout)


def test_unhandled_rejection_during_invoke_exits_128(tmp_path):
    files = {"index.js": "exports.handler = async () => { Promise.reject(new Error('nobody listens')); return new Promise(() => {}); };"}
    run = run_node(tmp_path, files, "index.handler", [Invocation({})], expect_exit=True)
    assert run.returncode == 128
    body = run.posts[0].json
    assert run.posts[0].kind == "error"
    assert body["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert body["errorMessage"] == "Error: nobody listens"


# ------------------------------------------------------------------------------------------------
# Init errors


def init_failure(tmp_path, files, handler, **kw) -> tuple[Post, Run]:
    run = run_node(tmp_path, files, handler, [Invocation({})], expect_exit=True, **kw)
    assert run.returncode == 129
    assert [p.path for p in run.posts] == [f"{PREFIX}/init/error"]
    post = run.posts[0]
    assert post.headers["lambda-runtime-function-error-type"] == post.json["errorType"]
    assert list(post.json) == ["errorType", "errorMessage", "trace"]
    m = re.search(rf"{ISO}\tundefined\tERROR\tUncaught Exception \t(\{{.*\}})\n", run.stdout)
    assert m, run.stdout
    logged = json.loads(m.group(1))
    assert (logged["errorType"], logged["errorMessage"]) == (post.json["errorType"], post.json["errorMessage"])
    assert logged["stack"] == post.json["trace"]
    return post, run


def test_module_not_found(tmp_path):
    post, run = init_failure(tmp_path, {"index.js": "exports.handler = async () => 1;"}, "nothere.handler")
    assert post.json["errorType"] == "Runtime.ImportModuleError"
    assert post.json["errorMessage"].startswith("Error: Cannot find module 'nothere'")
    assert post.json["trace"][0].startswith("Runtime.ImportModuleError: Error: Cannot find module 'nothere'")


def test_missing_dependency_of_the_handler_module(tmp_path):
    files = {"index.js": "require('left-pad-that-is-not-installed'); exports.handler = async () => 1;"}
    post, _ = init_failure(tmp_path, files, "index.handler")
    assert post.json["errorType"] == "Runtime.ImportModuleError"
    assert "Cannot find module 'left-pad-that-is-not-installed'" in post.json["errorMessage"]


def test_handler_not_exported(tmp_path):
    post, _ = init_failure(tmp_path, {"index.js": "exports.handler = async () => 1;"}, "index.nope")
    assert post.json["errorType"] == "Runtime.HandlerNotFound"
    assert post.json["errorMessage"] == "index.nope is undefined or not exported"


def test_export_is_not_a_function(tmp_path):
    post, _ = init_failure(tmp_path, {"index.mjs": "export const handler = 42;"}, "index.handler")
    assert post.json["errorType"] == "Runtime.HandlerNotFound"
    assert post.json["errorMessage"] == "index.handler is not a function"


def test_malformed_handler_name(tmp_path):
    post, _ = init_failure(tmp_path, {"index.js": ""}, "index")
    assert post.json == {"errorType": "Runtime.MalformedHandlerName", "errorMessage": "Bad handler", "trace": post.json["trace"]}
    post, _ = init_failure(tmp_path, {"index.js": ""}, "../index.handler")
    assert post.json["errorType"] == "Runtime.MalformedHandlerName"


@pytest.mark.parametrize("name, source", [("index.js", "exports.handler = async () => {;"), ("index.mjs", "export const handler = ;")])
def test_syntax_error(tmp_path, name, source):
    post, _ = init_failure(tmp_path, {name: source}, "index.handler")
    assert post.json["errorType"] == "Runtime.UserCodeSyntaxError"
    assert post.json["errorMessage"].startswith("SyntaxError: ")


def test_error_thrown_at_module_top_level(tmp_path):
    post, _ = init_failure(tmp_path, {"index.js": "throw new TypeError('no config');"}, "index.handler")
    assert post.json["errorType"] == "TypeError" and post.json["errorMessage"] == "no config"


def test_callback_handlers_are_rejected_on_nodejs24(tmp_path):
    files = {"index.js": "exports.handler = (event, context, callback) => callback(null, 1);"}
    post, _ = init_failure(tmp_path, files, "index.handler", env={"AWS_EXECUTION_ENV": "AWS_Lambda_nodejs24.x"})
    assert post.json["errorType"] == "Runtime.CallbackHandlerDeprecated"


# ------------------------------------------------------------------------------------------------
# Console


def test_console_lines_are_written_before_the_response(tmp_path):
    files = {
        "index.js": """
console.log('init line');
exports.handler = async (event) => {
  console.log('hello %s', 'world', 42, { a: 1 });
  console.info('info');
  console.warn('warn');
  console.error('error');
  console.debug('debug');
  console.trace('trace');
  console.log('multi\\nline');
  return 'done';
};"""
    }
    run = run_node(tmp_path, files, "index.handler", [Invocation({}, request_id="abc-123")])
    snapshot = run.posts[0].stdout
    assert re.match(rf"{ISO}\tundefined\tINFO\tinit line\n", snapshot)
    expected = [
        ("INFO", "hello world 42 { a: 1 }"),
        ("INFO", "info"),
        ("WARN", "warn"),
        ("ERROR", "error"),
        ("DEBUG", "debug"),
        ("TRACE", "trace"),
        ("INFO", "multi\nline"),
    ]
    pattern = "".join(rf"{ISO}\tabc-123\t{level}\t{re.escape(text)}\n" for level, text in expected)
    assert re.search(pattern + r"\Z", snapshot), snapshot


def test_large_output_is_flushed_before_the_response(tmp_path):
    files = {
        "index.js": """
exports.handler = async () => {
  const filler = 'x'.repeat(200);
  for (let i = 0; i < 3000; i++) console.log(i, filler);
  console.log('last line');
  return 'ok';
};"""
    }
    run = run_node(tmp_path, files, "index.handler", [Invocation({})])
    assert run.posts[0].stdout.endswith("\tINFO\tlast line\n")
    assert run.posts[0].stdout.count("\treq-1\tINFO\t") == 3001


def test_log_level_and_json_format(tmp_path):
    files = {"index.js": "exports.handler = async () => { console.debug('hidden'); console.info('shown', 1); console.warn({ k: 'v' }); return 1; };"}
    env = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}
    run = run_node(tmp_path, files, "index.handler", [Invocation({})], env=env)
    records = [json.loads(line) for line in run.posts[0].stdout.splitlines()]
    assert [(r["level"], r["requestId"], r["message"]) for r in records] == [
        ("INFO", "req-1", "shown 1"),
        ("WARN", "req-1", {"k": "v"}),
    ]


# ------------------------------------------------------------------------------------------------
# Throughput


def test_noop_invokes_are_cheap(tmp_path):
    count = 300
    files = {"index.js": "exports.handler = async () => null;"}
    started = time.monotonic()
    run = run_node(tmp_path, files, "index.handler", [Invocation({}) for _ in range(count)])
    elapsed = time.monotonic() - started
    assert [p.body for p in run.posts] == [b"null"] * count
    assert elapsed < 10, f"{count} no-op invokes took {elapsed:.2f}s"


# ------------------------------------------------------------------------------------------------
# lamina's socket pair: frames (lamina/runtime_api/frames.py)


class FramesPeer:
    """lamina's side of the socket pair, for a Node.js runtime started on the other end (standby first)."""

    def __init__(self, tmp_path: Path, source: str, api: str = "127.0.0.1:1") -> None:
        import socket as _socket

        write_files(tmp_path / "task", {"index.js": source})
        self.sock, theirs = _socket.socketpair()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_LAMBDA_RUNTIME_API": api,
            "_LAMINA_RUNTIME_FD": str(theirs.fileno()), "LAMINA_STANDBY": "1",
            "LAMBDA_TASK_ROOT": str(tmp_path / "task"), "LAMBDA_RUNTIME_DIR": str(NODE_BOOTSTRAP.parent),
        }
        self.proc = subprocess.Popen([NODE, str(NODE_BOOTSTRAP)], cwd=tmp_path / "task", env=env,
                                     pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        theirs.close()
        self.data = b""

    def next_frame(self) -> tuple:
        from lamina.runtime_api.frames import HEAD

        while True:
            if len(self.data) >= HEAD.size:
                kind, la, lb, lc = HEAD.unpack_from(self.data)
                end = HEAD.size + la + lb + lc
                if len(self.data) >= end:
                    at = HEAD.size
                    data = self.data
                    self.data = data[end:]
                    return kind, data[at:at + la], data[at + la:at + la + lb], data[at + la + lb:end]
            ready, _, _ = select.select([self.sock], [], [], 15)
            assert ready, "the client sent nothing"
            chunk = self.sock.recv(65536)
            assert chunk, self.proc.stderr.read().decode() if self.proc.poll() is not None else "closed"
            self.data += chunk

    def assign(self, variables: str = "_HANDLER=index.handler\0AWS_LAMBDA_FUNCTION_NAME=fr\0") -> None:
        from lamina.runtime_api.frames import frame

        assert self.next_frame() == (b"S", b"", b"", b"")
        self.sock.sendall(frame(b"A", body=variables.encode()))
        assert self.next_frame() == (b"N", b"", b"", b"")

    def event(self, request_id: str, body: bytes, client_context: str = "") -> None:
        from lamina.runtime_api.frames import event_frame

        self.sock.sendall(event_frame((request_id, str(int(time.time() * 1000) + 60000),
                                       "arn:aws:lambda:us-east-1:1:function:fr", "Root=1-2-3", client_context, ""),
                                      body))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()


def test_on_the_inherited_socket_the_client_speaks_frames(tmp_path):
    """Given `_LAMINA_RUNTIME_FD`, the client waits for its assignment (standby), asks for events and sends
    results as frames on that socket: a result and the next `/next` in one write, the event's fields as
    the HTTP API's headers; a refused `/next` ends it."""
    from lamina.runtime_api.frames import error_frame

    peer = FramesPeer(tmp_path, (
        "exports.handler = async (event, context) => ({ got: event, id: context.awsRequestId,"
        " arn: context.invokedFunctionArn, fn: process.env.AWS_LAMBDA_FUNCTION_NAME,"
        " cc: context.clientContext });"))
    try:
        peer.assign()
        peer.event("r1", b'{"k": 1}', '{"client": {"installation_id": "i"}}')
        kind, a, b, body = peer.next_frame()
        assert (kind, a, b) == (b"R", b"r1", b"application/json")
        assert json.loads(body) == {"got": {"k": 1}, "id": "r1", "arn": "arn:aws:lambda:us-east-1:1:function:fr",
                                    "fn": "fr", "cc": {"client": {"installation_id": "i"}}}
        assert peer.next_frame() == (b"N", b"", b"", b"")
        peer.sock.sendall(error_frame(b"X", 403, "InvalidStateTransition", "no more"))
        assert peer.proc.wait(timeout=15) == 1
        assert b"403" in peer.proc.stderr.read()
    finally:
        peer.close()


def test_frames_carry_errors_and_multibyte_results_and_the_loop_runs_between_invocations(tmp_path):
    """On the socket pair: a thrown error goes as an error frame, a result's length counts bytes, not
    characters; what a handler left to the event loop (an immediate, a due timer) runs before the client
    waits for the next event, as it did while a `/next` was pending."""
    peer = FramesPeer(tmp_path, (
        "exports.handler = async (event) => {\n"
        "  if (event.fail) throw new TypeError('bad ' + event.fail);\n"
        "  setImmediate(() => console.log('later', event.n));\n"
        "  return { text: 'h\u00e9llo \u2603', n: event.n };\n"
        "};"))
    try:
        peer.assign()
        peer.event("r1", b'{"n": 1}')
        kind, a, b, body = peer.next_frame()
        assert (kind, a, b) == (b"R", b"r1", b"application/json")
        assert json.loads(body) == {"text": "h\u00e9llo \u2603", "n": 1}
        assert peer.next_frame() == (b"N", b"", b"", b"")
        # The immediate ran before the client sat down to wait: its line is out with no event sent.
        ready, _, _ = select.select([peer.proc.stdout], [], [], 15)
        assert ready
        assert b"\tINFO\tlater 1\n" in os.read(peer.proc.stdout.fileno(), 65536)
        peer.event("r2", b'{"fail": "input"}')
        kind, a, b, body = peer.next_frame()
        assert (kind, a, b) == (b"E", b"r2", b"")
        error = json.loads(body)
        assert (error["errorType"], error["errorMessage"]) == ("TypeError", "bad input")
        assert peer.next_frame() == (b"N", b"", b"", b"")
        peer.event("r3", b'{"n": 3}')
        assert json.loads(peer.next_frame()[3])["n"] == 3
    finally:
        peer.close()


def test_when_the_socket_pair_closes_the_client_goes_on_over_tcp(tmp_path):
    """lamina closing the socket pair (its end gone) is not the runtime's end: the client asks the
    listener at AWS_LAMBDA_RUNTIME_API for the next event, over HTTP, and posts there."""
    api = FakeRuntimeApi()
    peer = FramesPeer(tmp_path, "exports.handler = async (event) => ({ n: event.n });", api.address)
    try:
        peer.assign()
        peer.event("r1", b'{"n": 1}')
        assert json.loads(peer.next_frame()[3]) == {"n": 1}
        assert peer.next_frame() == (b"N", b"", b"", b"")
        api.invocations.put(Invocation({"n": 2}, request_id="r2"))
        peer.sock.close()
        [post] = api.wait_for_posts(1)
        assert (post.path, post.json) == (f"{PREFIX}/invocation/r2/response", {"n": 2})
    finally:
        peer.close()
        api.close()


def test_on_the_socket_pair_a_callback_waits_for_the_empty_event_loop(tmp_path):
    """callbackWaitsForEmptyEventLoop (the default) on the socket pair, which keeps no handle open: the
    result goes once the handler's timer has run, and the next invocation still comes."""
    peer = FramesPeer(tmp_path, (
        "let fired = 0;\n"
        "exports.handler = (event, context, callback) => {\n"
        "  setTimeout(() => { fired++; console.log('timer', event.n); }, 50);\n"
        "  callback(null, { n: event.n, fired });\n"
        "};"))
    try:
        peer.assign()
        for n in (1, 2):
            started = time.monotonic()
            peer.event(f"r{n}", json.dumps({"n": n}).encode())
            kind, a, _, body = peer.next_frame()
            assert (kind, a, json.loads(body)) == (b"R", f"r{n}".encode(), {"n": n, "fired": n - 1})
            assert time.monotonic() - started >= 0.045  # not before the timer ran
            assert peer.next_frame() == (b"N", b"", b"", b"")
    finally:
        peer.close()
