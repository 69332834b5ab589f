"""lamina's Python runtime client (src/lamina/runtimes/python/bootstrap.py) against a fake Runtime API.

Each test writes handler files into a temporary task root, starts a small HTTP/1.1 Runtime API in a thread
that hands out scripted events on ``/invocation/next`` and records every POST, and runs the bootstrap as a
subprocess exactly as lamina does (``python -S -B $LAMBDA_RUNTIME_DIR/bootstrap.py``, cwd = task root).
"""

from __future__ import annotations

import glob
import json
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from queue import Queue

import pytest

from lamina.runtime_api.frames import HEAD, error_frame, event_frame, frame

BOOTSTRAP = Path(__file__).resolve().parents[2] / "src" / "lamina" / "runtimes" / "python" / "bootstrap.py"
API = "/2018-06-01/runtime"
RID_RE = r"[0-9a-f-]{36}"


@dataclass
class Post:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    port: int  # client port: tells connections apart

    def json(self):
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        api = self.server.api
        if self.path != f"{API}/invocation/next":
            self._reply(404, b'{"errorType":"NotFound"}')
            return
        api.next_ports.append(self.client_address[1])
        event = api.events.get()
        if event is None:  # shutting down
            self.close_connection = True
            return
        body, headers = event
        self._reply(200, body, headers)

    def do_POST(self) -> None:
        api = self.server.api
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        post = Post(self.path, {k.lower(): v for k, v in self.headers.items()}, body, self.client_address[1])
        if api.on_post is not None:
            api.on_post(post)
        self._reply(202, b'{"status":"OK"}')
        if api.drop_after_post:
            self.close_connection = True  # close without "Connection: close": a stale keep-alive socket
        with api.cond:
            api.posts.append(post)
            api.cond.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    api: FakeRuntimeAPI

    def handle_error(self, request, client_address) -> None:
        pass  # the bootstrap is killed mid-connection at the end of every test


class FakeRuntimeAPI:
    def __init__(self) -> None:
        self.events: Queue = Queue()
        self.posts: list[Post] = []
        self.next_ports: list[int] = []
        self.cond = threading.Condition()
        self.on_post = None
        self.drop_after_post = False
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.api = self
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def wait_posts(self, count: int, timeout: float = 20) -> list[Post]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.posts) >= count, timeout):
                raise AssertionError(f"expected {count} posts, got {self.posts}")
            return list(self.posts)

    def close(self) -> None:
        for _ in range(16):
            self.events.put(None)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@dataclass
class Env:
    api: FakeRuntimeAPI
    proc: subprocess.Popen
    task_root: Path
    runtime_dir: Path
    early_stdout: bytearray = field(default_factory=bytearray)
    early_stderr: bytearray = field(default_factory=bytearray)
    stdout: str = ""
    stderr: str = ""

    def invoke(self, event=None, *, raw: bytes | None = None, request_id: str | None = None,
               deadline_ms: int | None = None, **headers: str) -> Post:
        request_id = request_id or str(uuid.uuid4())
        if deadline_ms is None:
            deadline_ms = int(time.time() * 1000) + 30_000
        hdrs = {"Lambda-Runtime-Aws-Request-Id": request_id, "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:fn"}
        hdrs.update({"Lambda-Runtime-" + k.replace("_", "-"): v for k, v in headers.items()})
        body = raw if raw is not None else json.dumps(event).encode()
        count = len(self.api.posts)
        self.api.events.put((body, hdrs))
        post = self.api.wait_posts(count + 1)[count]
        assert f"/invocation/{request_id}/" in post.path
        return post

    def finish(self) -> None:
        """Stop the (endlessly looping) runtime and collect its output."""
        if self.proc.poll() is None:
            self.proc.kill()
        out, err = self.proc.communicate(timeout=20)
        self.stdout = (bytes(self.early_stdout) + out).decode()
        self.stderr = (bytes(self.early_stderr) + err).decode()

    def wait_exit(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout)
        self.finish()
        return code


@pytest.fixture
def runtime(tmp_path):
    envs: list[Env] = []

    def start(files: dict[str, str], handler: str, *, python: str = sys.executable,
              extra_env: dict[str, str] | None = None, runtime_files: dict[str, str] | None = None) -> Env:
        n = len(envs)
        task_root, runtime_dir = tmp_path / f"task{n}", tmp_path / f"runtime{n}"
        for root, content in ((task_root, files), (runtime_dir, runtime_files or {})):
            root.mkdir()
            for name, text in content.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_text(text)
        shutil.copy(BOOTSTRAP, runtime_dir / "bootstrap.py")  # lamina puts it in LAMBDA_RUNTIME_DIR
        api = FakeRuntimeAPI()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "America/New_York",
            "AWS_LAMBDA_RUNTIME_API": api.address, "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(task_root), "LAMBDA_RUNTIME_DIR": str(runtime_dir),
            "AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/02/[$LATEST]0123456789abcdef0123456789abcdef",
            "AWS_REGION": "us-east-1", "_X_AMZN_TRACE_ID": "stale",
        }
        env.update(extra_env or {})
        try:
            proc = subprocess.Popen([python, "-S", "-B", str(runtime_dir / "bootstrap.py")], cwd=task_root, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except BaseException:
            api.close()
            raise
        e = Env(api, proc, task_root, runtime_dir)
        envs.append(e)
        return e

    yield start
    for e in envs:
        try:
            e.finish()
        finally:
            e.api.close()


def _interpreters() -> list:
    found = []
    for minor in range(9, 14):
        paths = sorted(glob.glob(f"/root/.pyenv/versions/3.{minor}*/bin/python3.{minor}"))
        mark = pytest.mark.skipif(not paths, reason=f"no python3.{minor} under /root/.pyenv")
        found.append(pytest.param(paths[-1] if paths else "", id=f"py3.{minor}", marks=mark))
    return found


# ---------------------------------------------------------------------------------------------------- handlers

ECHO = """
def handler(event, context):
    return {"echo": event, "text": "caf\\u00e9"}
"""

CONTEXT = """
import os
def handler(event, context):
    cc = context.client_context
    return {
        "aws_request_id": context.aws_request_id, "function_name": context.function_name,
        "function_version": context.function_version, "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb, "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
        "client_context": None if cc is None else {
            "client": None if cc.client is None else [cc.client.installation_id, cc.client.app_title,
                cc.client.app_version_name, cc.client.app_version_code, cc.client.app_package_name],
            "custom": cc.custom, "env": cc.env},
        "remaining": context.get_remaining_time_in_millis(),
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }
"""

RAISES = """
def helper(event):
    return 1 / event["zero"]

def handler(event, context):
    if event.get("divide"):
        return helper(event)
    raise Exception("Handler fails")
"""


def _error_body(post: Post) -> dict:
    body = post.json()
    assert list(body) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    return body


# ------------------------------------------------------------------------------------------------------- tests


def test_success_dict_result_over_one_keepalive_connection(runtime):
    env = runtime({"app.py": ECHO}, "app.handler")
    posts = [env.invoke({"n": i, "nested": {"a": [1, 2]}}, request_id=f"req-{i}") for i in range(3)]
    for i, post in enumerate(posts):
        assert post.path == f"{API}/invocation/req-{i}/response"
        assert post.headers["content-type"] == "application/json"
        expected = {"echo": {"n": i, "nested": {"a": [1, 2]}}, "text": "caf\u00e9"}
        assert post.body == json.dumps(expected, ensure_ascii=sys.version_info < (3, 12)).encode()
        assert post.headers["user-agent"].startswith("aws-lambda-python/")
    assert len(set(env.api.next_ports + [p.port for p in posts])) == 1  # keep-alive, never reconnected


def test_context_fields_and_trace_env(runtime):
    env = runtime({"app.py": CONTEXT}, "app.handler")
    client_context = {"client": {"installation_id": "i-1", "app_title": "T", "app_version_name": "1.0",
                                 "app_version_code": "10", "app_package_name": "com.x"},
                      "custom": {"k": "v"}, "env": {"platform": "linux"}}
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    post = env.invoke({}, request_id="r1", deadline_ms=int(time.time() * 1000) + 5000, Trace_Id=trace,
                      Client_Context=json.dumps(client_context),
                      Cognito_Identity=json.dumps({"cognitoIdentityId": "cid", "cognitoIdentityPoolId": "pool"}))
    got = post.json()
    assert 0 < got.pop("remaining") <= 5000
    assert got == {
        "aws_request_id": "r1", "function_name": "fn", "function_version": "$LATEST",
        "invoked_function_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "memory_limit_in_mb": "256", "log_group_name": "/aws/lambda/fn",
        "log_stream_name": "2024/01/02/[$LATEST]0123456789abcdef0123456789abcdef",
        "identity": ["cid", "pool"],
        "client_context": {"client": ["i-1", "T", "1.0", "10", "com.x"], "custom": {"k": "v"},
                           "env": {"platform": "linux"}},
        "trace": trace,
    }
    # No trace header, client context or identity: env var removed, attributes empty, past deadline -> 0.
    got = env.invoke({}, request_id="r2", deadline_ms=int(time.time() * 1000) - 1000).json()
    assert (got["trace"], got["client_context"], got["identity"], got["remaining"]) == (None, None, [None, None], 0)
    assert isinstance(got["remaining"], int)


def test_handler_error_shape_and_log(runtime):
    env = runtime({"app.py": RAISES}, "app.handler")
    post = env.invoke({}, request_id="r1")
    assert post.path == f"{API}/invocation/r1/error"
    assert post.headers["content-type"] == "application/json"
    assert "lambda-runtime-function-error-type" not in post.headers
    app = env.task_root / "app.py"
    assert _error_body(post) == {
        "errorMessage": "Handler fails", "errorType": "Exception", "requestId": "r1",
        "stackTrace": [f'  File "{app}", line 8, in handler\n    raise Exception("Handler fails")\n'],
    }
    # Nested frames, and no 3.11+ caret lines in the formatted frames.
    body = _error_body(env.invoke({"divide": True, "zero": 0}, request_id="r2"))
    assert (body["errorType"], body["errorMessage"]) == ("ZeroDivisionError", "division by zero")
    assert body["stackTrace"] == [
        f'  File "{app}", line 7, in handler\n    return helper(event)\n',
        f'  File "{app}", line 3, in helper\n    return 1 / event["zero"]\n',
    ]
    # The runtime survives and keeps serving.
    assert env.invoke({"divide": True, "zero": 2}).json() == 0.5
    env.finish()
    nb = "\u00a0"
    assert (f'[ERROR] Exception: Handler fails\rTraceback (most recent call last):\r{nb * 2}File "{app}", line 8, '
            f'in handler\r{nb * 4}raise Exception("Handler fails")\n') in env.stdout


INIT_FAILURES = [
    pytest.param({"app.py": ECHO}, "nope.handler", "Runtime.ImportModuleError",
                 "Unable to import module 'nope': No module named 'nope'", id="import-missing"),
    pytest.param({"app.py": "import not_installed_dep\n"}, "app.handler", "Runtime.ImportModuleError",
                 "Unable to import module 'app': No module named 'not_installed_dep'", id="import-dependency"),
    pytest.param({"app.py": ECHO}, "app.missing", "Runtime.HandlerNotFound",
                 "Handler 'missing' missing on module 'app'", id="handler-not-found"),
    pytest.param({"app.py": ECHO}, "app", "Runtime.MalformedHandlerName",
                 "Bad handler 'app': not enough values to unpack (expected 2, got 1)", id="malformed"),
    pytest.param({"pkg/mod.py": ECHO}, "pkg/mod.nothere", "Runtime.HandlerNotFound",
                 "Handler 'nothere' missing on module 'pkg/mod'", id="nested-not-found"),
    pytest.param({"app.py": ECHO}, "sys.handler", "Runtime.BuiltInModuleConflict",
                 "Cannot use built-in module sys as a handler module", id="builtin"),
]


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), INIT_FAILURES)
def test_init_failures(runtime, files, handler, error_type, message):
    env = runtime(files, handler)
    assert env.wait_exit() == 1
    (post,) = env.api.posts
    assert post.path == f"{API}/init/error"
    assert post.headers["lambda-runtime-function-error-type"] == error_type
    assert post.headers["content-type"] == "application/json"
    assert _error_body(post) == {"errorMessage": message, "errorType": error_type, "requestId": "",
                                 "stackTrace": []}
    assert f"[ERROR] {error_type}: {message}\rTraceback (most recent call last):\n" in env.stderr
    assert "LAMBDA_WARNING: Unhandled exception." in env.stdout


def test_init_syntax_error(runtime):
    env = runtime({"app.py": "def handler(event, context)\n    return 1\n"}, "app.handler")
    assert env.wait_exit() == 1
    (post,) = env.api.posts
    assert post.headers["lambda-runtime-function-error-type"] == "Runtime.UserCodeSyntaxError"
    body = _error_body(post)
    assert body["errorMessage"].startswith("Syntax error in module 'app': ")
    assert body["stackTrace"][0].startswith(f'  File "{env.task_root / "app.py"}" Line 1\n    def handler')


def test_init_exception_in_module_code(runtime):
    env = runtime({"app.py": "import json\nraise RuntimeError('bad config')\n"}, "app.handler")
    assert env.wait_exit() == 1
    (post,) = env.api.posts
    assert post.headers["lambda-runtime-function-error-type"] == "RuntimeError"
    body = _error_body(post)
    assert (body["errorType"], body["errorMessage"], body["requestId"]) == ("RuntimeError", "bad config", "")
    assert body["stackTrace"][-1] == f'  File "{env.task_root / "app.py"}", line 2, in <module>\n' \
                                     "    raise RuntimeError('bad config')\n"
    assert not any("bootstrap.py" in frame for frame in body["stackTrace"])
    assert "[ERROR] RuntimeError: bad config\rTraceback (most recent call last):\r" in env.stderr


def test_nested_module_path(runtime):
    env = runtime({"pkg/sub/mod.py": "def fn(event, context):\n    return __name__\n"}, "pkg/sub/mod.fn")
    assert env.invoke({}).json() == "pkg.sub.mod"


def test_bytes_results_are_sent_raw(runtime):
    env = runtime({"app.py": "def handler(event, context):\n"
                             "    return bytearray(b'\\xff\\x00ba') if event else b'\\x00raw\\xff'\n"}, "app.handler")
    post = env.invoke(None)
    assert (post.body, post.headers["content-type"]) == (b"\x00raw\xff", "application/unknown")
    post = env.invoke(1)
    assert (post.body, post.headers["content-type"]) == (b"\xff\x00ba", "application/unknown")


def test_decimal_and_none_results(runtime):
    env = runtime({"app.py": "from decimal import Decimal\n"
                             "def handler(event, context):\n"
                             "    if event: return None\n"
                             "    return {'a': Decimal('1.5'), 'b': Decimal('3'), 'c': [Decimal('-0.25')],"
                             " 'd': Decimal('2.0')}\n"}, "app.handler")
    assert env.invoke(0).body == b'{"a": 1.5, "b": 3, "c": [-0.25], "d": 2.0}'
    post = env.invoke(1)
    assert (post.path.endswith("/response"), post.body) == (True, b"null")


def test_marshal_and_unmarshal_errors(runtime):
    env = runtime({"app.py": "def handler(event, context):\n    return {1, 2}\n"}, "app.handler")
    body = _error_body(env.invoke({}, request_id="r1"))
    assert body == {"errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
                    "errorType": "Runtime.MarshalError", "requestId": "r1", "stackTrace": []}
    post = env.invoke(raw=b"{not json", request_id="r2")
    assert post.path == f"{API}/invocation/r2/error"
    body = _error_body(post)
    assert body["errorType"] == "Runtime.UnmarshalError"
    assert body["errorMessage"].startswith("Unable to unmarshal input: Expecting property name")
    env.finish()
    assert "[ERROR] Runtime.MarshalError: Unable to marshal response: Object of type set" in env.stdout


def test_logging_format(runtime):
    env = runtime({"app.py": "import logging\n"
                             "logging.getLogger().warning('at import')\n"
                             "def handler(event, context):\n"
                             "    logger = logging.getLogger()\n"
                             "    if event:\n"
                             "        logger.setLevel(logging.INFO)\n"
                             "    logger.info('info %s', event)\n"
                             "    logging.getLogger('child').warning('warn %s', event)\n"
                             "    logger.debug('never')\n"}, "app.handler")
    env.invoke(0, request_id="11111111-1111-1111-1111-111111111111")
    env.invoke(1, request_id="22222222-2222-2222-2222-222222222222")
    env.finish()
    line = r"\[(\w+)\]\t(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3}Z\t(%s|)\t(.*)\n" % RID_RE
    records = re.findall(line, env.stdout)
    assert [(lvl, rid[:1], msg) for lvl, _, rid, msg in records] == [
        ("WARNING", "", "at import"),
        ("WARNING", "1", "warn 0"),  # root level stays WARNING until user code lowers it
        ("INFO", "2", "info 1"),
        ("WARNING", "2", "warn 1"),
    ]
    stamp = datetime.strptime(records[-1][1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 120  # UTC although TZ=America/New_York
    assert "never" not in env.stdout


def test_output_is_in_the_pipe_before_the_response(runtime):
    env = runtime({"app.py": "import sys, logging\n"
                             "def handler(event, context):\n"
                             "    print('printed line')\n"
                             "    sys.stdout.write('partial stdout')\n"
                             "    sys.stderr.write('partial stderr')\n"
                             "    logging.warning('logged')\n"
                             "    return 'ok'\n"}, "app.handler")

    def drain(post: Post) -> None:
        for stream, sink in ((env.proc.stdout, env.early_stdout), (env.proc.stderr, env.early_stderr)):
            while select.select([stream], [], [], 0)[0]:
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    break
                sink += chunk

    env.api.on_post = drain
    assert env.invoke({}).json() == "ok"
    early_out, early_err = bytes(env.early_stdout), bytes(env.early_stderr)
    assert b"printed line\n" in early_out
    assert b"partial stdout" in early_out
    assert b"\tlogged\n" in early_out
    assert b"partial stderr" in early_err


def test_sys_path_layout(runtime, tmp_path):
    extra = tmp_path / "from-pythonpath"
    extra.mkdir()
    files = {"app.py": "import sys, sdkmod, shadowed\n"
                       "def handler(event, context):\n"
                       "    return {'path': sys.path, 'sdk': sdkmod.WHERE, 'shadowed': shadowed.WHERE}\n",
             "shadowed.py": "WHERE = 'task'\n"}
    runtime_files = {"sdkmod.py": "WHERE = 'runtime'\n", "shadowed.py": "WHERE = 'runtime'\n"}
    env = runtime(files, "app.handler", runtime_files=runtime_files, extra_env={"PYTHONPATH": str(extra)})
    got = env.invoke({}).json()
    assert (got["sdk"], got["shadowed"]) == ("runtime", "task")
    path = got["path"]
    version = "python%d.%d" % sys.version_info[:2]
    assert path[:3] == [str(env.task_root), f"/opt/python/lib/{version}/site-packages", "/opt/python"]
    assert path[3] == str(extra)  # PYTHONPATH entries stay, right after the layer directories
    assert path[-1] == str(env.runtime_dir)
    assert path.count(str(env.runtime_dir)) == 1  # the script's own directory was dropped from the front
    assert any(p.endswith(f"lib/{version}") for p in path[4:-1])  # the interpreter's stdlib


def test_reconnects_when_the_connection_is_dropped(runtime):
    env = runtime({"app.py": ECHO}, "app.handler")
    env.api.drop_after_post = True
    for i in range(3):
        assert env.invoke(i).json()["echo"] == i
    assert len(set(env.api.next_ports)) >= 3


@pytest.mark.parametrize("python", _interpreters())
def test_every_supported_interpreter(runtime, python):
    handler = ECHO + RAISES.replace("def handler", "def fails") + CONTEXT.replace("def handler", "def ctx") + (
        "from decimal import Decimal\n"
        "def main(event, context):\n"
        "    import sys\n"
        "    if event == 'ctx': return ctx(event, context)\n"
        "    if event == 'fail': return fails({'divide': True, 'zero': 0}, context)\n"
        "    return {'v': list(sys.version_info[:2]), 'd': Decimal('1.25'), 'e': handler(event, context)}\n"
    )
    env = runtime({"app.py": handler}, "app.main", python=python)
    minor = int(python.rsplit(".", 1)[-1])
    post = env.invoke("x")
    expected = {"v": [3, minor], "d": 1.25, "e": {"echo": "x", "text": "caf\u00e9"}}
    assert post.body == json.dumps(expected, ensure_ascii=minor < 12).encode()
    got = env.invoke("ctx", request_id="r-ctx", Trace_Id="Root=1-abc").json()
    assert (got["aws_request_id"], got["memory_limit_in_mb"], got["trace"]) == ("r-ctx", "256", "Root=1-abc")
    body = _error_body(env.invoke("fail", request_id="r-fail"))
    assert (body["errorType"], body["requestId"]) == ("ZeroDivisionError", "r-fail")
    assert not any("^" in frame or "bootstrap.py" in frame for frame in body["stackTrace"])
    assert body["stackTrace"][-1].endswith('    return 1 / event["zero"]\n')

    broken = runtime({"app.py": ECHO}, "nope.handler", python=python)
    assert broken.wait_exit() == 1
    assert broken.api.posts[0].headers["lambda-runtime-function-error-type"] == "Runtime.ImportModuleError"


def test_the_runtime_api_connection_needs_no_resolver():
    """A literal IPv4 address (as Lambda's AWS_LAMBDA_RUNTIME_API is) is connected to directly:
    getaddrinfo would load the idna codec (stringprep, unicodedata): ~2.5 ms of every cold start."""
    import socket as _socket
    listener = _socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        code = ("import sys; sys.path.insert(0, %r); import bootstrap; "
                "c = bootstrap.RuntimeClient('127.0.0.1:%d'); c._connect(); "
                "print('encodings.idna' in sys.modules, 'unicodedata' in sys.modules)"
                % (str(BOOTSTRAP.parent), listener.getsockname()[1]))
        out = subprocess.run([sys.executable, "-S", "-B", "-c", code], capture_output=True, text=True, timeout=30)
        assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr
    finally:
        listener.close()


def _load_bootstrap():
    import importlib.util
    spec = importlib.util.spec_from_file_location("lamina_bootstrap_under_test", BOOTSTRAP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read_frames(sock, n: int = 1) -> list[tuple]:
    """The next `n` frames the client sent, each (kind, a, b, body) (lamina/runtime_api/frames.py)."""
    data, frames = b"", []
    while len(frames) < n:
        if len(data) >= HEAD.size:
            kind, la, lb, lc = HEAD.unpack_from(data)
            end = HEAD.size + la + lb + lc
            if len(data) >= end:
                at = HEAD.size
                frames.append((kind, data[at:at + la], data[at + la:at + la + lb], data[at + la + lb:end]))
                data = data[end:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the client went away")
        data += chunk
    assert not data, "more was sent than expected"
    return frames


def test_the_inherited_channel_is_used_first_then_the_address():
    """lamina hands its own runtimes a connected Unix socket (_LAMINA_RUNTIME_FD), on which the Runtime API
    travels in frames: the first connection is that socket, not inheritable by the handler's children;
    once it closes, the client reconnects to AWS_LAMBDA_RUNTIME_API and speaks HTTP like any other."""
    import socket as _socket
    module = _load_bootstrap()
    ours, theirs = _socket.socketpair()
    listener = _socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    seen = []

    def server():
        seen.extend(_read_frames(ours))
        ours.sendall(event_frame(("via-channel", "123", "arn:x", "Root=1", "", ""), b"{}"))
        ours.close()  # lamina's end goes away: the client must fall back to the address
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            seen.append(data.split(b" ")[1].decode())
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nLambda-Runtime-Aws-Request-Id: via-tcp\r\n\r\n{}")

    thread = threading.Thread(target=server, daemon=True)
    thread.start()
    try:
        client = module.RuntimeClient("127.0.0.1:%d" % listener.getsockname()[1], theirs.detach())
        headers, body = client.next_invocation()
        assert headers == {"lambda-runtime-aws-request-id": "via-channel", "lambda-runtime-deadline-ms": "123",
                           "lambda-runtime-invoked-function-arn": "arn:x", "lambda-runtime-trace-id": "Root=1",
                           "lambda-runtime-client-context": "", "lambda-runtime-cognito-identity": ""}
        assert body == b"{}"
        assert client._sock.family == _socket.AF_UNIX and not client._sock.get_inheritable()
        headers, _ = client.next_invocation()
        assert headers.get("lambda-runtime-aws-request-id") == "via-tcp"
        thread.join(5)
        assert seen == [(b"N", b"", b"", b""), "/2018-06-01/runtime/invocation/next"]
        client.close()
    finally:
        listener.close()


def test_frames_on_the_channel_result_next_init_error_and_standby():
    """What lamina's Python client sends on its channel, frame by frame: a result and the next `/next` in
    one write, a refused result (x) skipped, a refused `/next` (X) raised, the standby's assignment, and an
    init error (lamina/runtime_api/frames.py)."""
    import socket as _socket
    module = _load_bootstrap()
    ours, theirs = _socket.socketpair()
    client = module.RuntimeClient("127.0.0.1:1", theirs.detach())
    ours.sendall(frame(b"A", body=b"A=1\0B=x=y\0"))
    assert client.standby() == {"A": "1", "B": "x=y"}
    assert _read_frames(ours) == [(b"S", b"", b"", b"")]

    ours.sendall(error_frame(b"x", 400, "InvalidRequestID", "Invalid request ID")
                 + event_frame(("r2", "5", "arn:y", "Root=2", '{"c": 1}', ""), b"[1]"))
    headers, body = client.result_and_next("r1", "response", b'"ok"', "text/plain")
    assert body == b"[1]" and headers["lambda-runtime-aws-request-id"] == "r2"
    assert headers["lambda-runtime-client-context"] == '{"c": 1}'
    assert not headers.get("lambda-runtime-cognito-identity")  # empty: no identity
    assert _read_frames(ours, 2) == [(b"R", b"r1", b"text/plain", b'"ok"'), (b"N", b"", b"", b"")]

    big = b"x" * 300_000  # more than one read on both sides
    sender = threading.Thread(target=ours.sendall, args=(event_frame(("r3", "5", "arn:y", "Root=3", "", ""), big),))
    sender.start()  # more than the socket holds: sent while the client reads
    headers, body = client.result_and_next("r2", "error", b'{"errorType": "E"}', "")
    sender.join(5)
    assert body == big
    assert _read_frames(ours, 2) == [(b"E", b"r2", b"", b'{"errorType": "E"}'), (b"N", b"", b"", b"")]

    ours.sendall(error_frame(b"X", 403, "InvalidStateTransition", "no"))
    with pytest.raises(RuntimeError, match="403"):
        client.result_and_next("r3", "response", b"{}", "application/json")
    ours2, theirs2 = _socket.socketpair()
    client3 = module.RuntimeClient("127.0.0.1:1", theirs2.detach())
    client3.post_init_error({"errorType": "Runtime.ImportModuleError", "errorMessage": "m"})
    [(kind, a, b, body)] = _read_frames(ours2)
    assert (kind, a, b) == (b"I", b"", b"Runtime.ImportModuleError")
    assert json.loads(body)["errorMessage"] == "m"


def test_the_client_is_woken_once_per_answer_not_when_lamina_reads_its_request():
    """On a Unix socket, the peer's read of what a task sent wakes every task blocked in recv() on it (the
    "room to write" wake-up). The client waits in poll(POLLIN), which sleeps through that one: one
    voluntary context switch per answer, not two."""
    import socket as _socket
    module = _load_bootstrap()
    ours, theirs = _socket.socketpair()
    client = module.RuntimeClient("127.0.0.1:1", theirs.detach())
    switches: list[int] = []

    def voluntary(tid: int) -> int:
        with open(f"/proc/self/task/{tid}/status") as f:
            return int(next(line for line in f if line.startswith("voluntary_ctxt_switches")).split()[1])

    def run() -> None:
        tid = threading.get_native_id()
        if client._sock is None:
            client._connect()
        client._sock.sendall(frame(b"N"))
        before = voluntary(tid)
        client._read_event(client._sock)
        switches.append(voluntary(tid) - before)

    for _ in range(3):
        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.05)  # the client blocks waiting for the answer
        ours.recv(65536)  # reading its request: room to write on its socket
        time.sleep(0.05)
        ours.sendall(event_frame(("r", "1", "arn", "t", "", ""), b"{}"))
        thread.join(5)
        if switches[-1] == 1:  # another wake-up (the machine's) may add one: a few tries
            break
    assert switches[-1] == 1, switches
