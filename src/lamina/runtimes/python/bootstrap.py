"""lamina's Python runtime client: the process that runs inside each python3.9-3.13 execution environment.

lamina starts it as ``<python> -S -B $LAMBDA_RUNTIME_DIR/bootstrap.py`` with cwd = ``$LAMBDA_TASK_ROOT``. It plays
the part of AWS's ``awslambdaric`` (spec sections 5.1, 7): it imports the function's handler (``_HANDLER`` =
``module.function``), reports import failures to ``/runtime/init/error`` and exits 1, then loops forever over
the Runtime API: ``GET /invocation/next`` -> ``handler(event, context)`` -> ``POST /invocation/{id}/response``
(or ``/error``). Error bodies, error types, messages and log formats follow awslambdaric.

It must stay a single stdlib-only file that runs unchanged on Python 3.9 through 3.13.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import select
import socket
import struct
import sys
import time
import traceback

API = "/2018-06-01/runtime"
USER_AGENT = "aws-lambda-python/%d.%d.%d-lamina" % sys.version_info[:3]
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
NBSP = "\u00a0"
UNHANDLED_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. However, in "
    "rare cases, a Lambda runtime update can cause unexpected function behavior. For functions using managed "
    "runtimes, runtime updates can be triggered by a function change, or can be applied automatically. To "
    "determine if the runtime has been updated, check the runtime version in the INIT_START log entry. If this "
    "error correlates with a change in the runtime version, you may be able to mitigate this error by temporarily "
    "rolling back to the previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)

#: In a response's header block, lower-cased (for the responses whose other headers nobody reads).
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)")
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close[ \t]*(?:\r|$)")

#: On lamina's inherited socket the Runtime API travels in frames (lamina/runtime_api/frames.py says
#: which): kind, then the lengths of its two fields and of its body.
_FRAME = struct.Struct("<cIII")
_FRAME_SIZE = _FRAME.size
_NEXT = _FRAME.pack(b"N", 0, 0, 0)
_EVENT_HEADERS = ("lambda-runtime-aws-request-id", "lambda-runtime-deadline-ms",
                  "lambda-runtime-invoked-function-arn", "lambda-runtime-trace-id",
                  "lambda-runtime-client-context", "lambda-runtime-cognito-identity")

#: Request id of the invocation in progress ("" during init); read by the logging filter.
_request_id = ""


class Fault(Exception):
    """A runtime-detected failure with a Lambda error type (``Runtime.*``)."""

    def __init__(self, error_type: str, msg: str, trace: list | None = None) -> None:
        super().__init__(msg)
        self.error_type = error_type
        self.msg = msg
        self.trace = trace or []


# --------------------------------------------------------------------------------------------------- context


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, data: dict) -> None:
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")

    def __init__(self, data: dict) -> None:
        for name in self.__slots__:
            setattr(self, name, data.get(name))


class ClientContext:
    __slots__ = ("custom", "env", "client")

    def __init__(self, data: dict) -> None:
        self.custom = data.get("custom")
        self.env = data.get("env")
        client = data.get("client")
        self.client = Client(client) if isinstance(client, dict) else None


class LambdaContext:
    """The ``context`` argument of the handler (same attributes as awslambdaric's)."""

    #: Per-environment attributes, read from the environment once at startup (see ``main``).
    _static: dict = dict.fromkeys(("function_name", "function_version", "memory_limit_in_mb", "log_group_name",
                                   "log_stream_name"))

    def __init__(self, request_id: str, headers: dict) -> None:
        """`headers`: the event's response headers, names in lower case."""
        self.__dict__.update(self._static)  # one call for five attributes
        self.aws_request_id = request_id
        get = headers.get
        self.invoked_function_arn = get("lambda-runtime-invoked-function-arn")
        self.tenant_id = get("lambda-runtime-aws-tenant-id")
        deadline = get("lambda-runtime-deadline-ms")
        self._epoch_deadline_time_in_ms = int(deadline) if deadline else 0
        raw = get("lambda-runtime-client-context")
        self.client_context = ClientContext(_parse_header(raw, "Client Context")) if raw else None
        raw = get("lambda-runtime-cognito-identity")
        self.identity = CognitoIdentity(_parse_header(raw, "Cognito Identity") if raw else {})

    def get_remaining_time_in_millis(self) -> int:
        remaining = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg) -> None:
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return "LambdaContext([aws_request_id=%s,function_name=%s,function_version=%s,invoked_function_arn=%s])" % (
            self.aws_request_id, self.function_name, self.function_version, self.invoked_function_arn)


def _parse_header(raw: str, name: str) -> dict:
    try:
        value = json.loads(raw)
    except Exception as e:
        raise Fault("Runtime.LambdaContextUnmarshalError", "Unable to parse %s JSON: %s" % (name, e))
    return value if isinstance(value, dict) else {}


# ------------------------------------------------------------------------------------------------ marshaling


def _json_default(obj):
    # A Decimal can only exist if its module was imported: look it up rather than paying its import at init.
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        if obj.is_finite() and obj.as_tuple().exponent >= 0:
            return int(obj)
        return float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


# awslambdaric stops escaping non-ASCII from python3.12 on.
_ENCODER = json.JSONEncoder(default=_json_default, ensure_ascii=sys.version_info < (3, 12))


def _c_codec():
    """json's C scanner and encoder, each made once: json.loads and JSONEncoder.encode make them anew (a
    closure, a dict, an encoder object) and go through several Python frames on every call — which, in
    one of many runtimes taking turns on a CPU, is memory out of the caches. Nones without them."""
    try:
        from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii
        from json.scanner import c_make_scanner
        markers: dict = {}
        encode = c_make_encoder(markers, _json_default, encode_basestring_ascii if _ENCODER.ensure_ascii
                                else encode_basestring, None, ": ", ", ", False, False, True)
        scan = c_make_scanner(json.JSONDecoder())
    except (ImportError, TypeError):
        return None, None, None
    if encode is None or scan is None:
        return None, None, None
    return scan, encode, markers


_SCAN, _ENCODE, _MARKERS = _c_codec()


def _marshal(result) -> tuple:
    """Result of the handler -> (body bytes, content type)."""
    if isinstance(result, (bytes, bytearray)):
        return result, "application/unknown"
    if _ENCODE is not None:
        try:
            return "".join(_ENCODE(result, 0)).encode("utf-8"), "application/json"
        except Exception:
            _MARKERS.clear()  # an error leaves marks of the objects it was in; the encoder below words it
    try:
        return _ENCODER.encode(result).encode("utf-8"), "application/json"
    except Exception as e:
        raise Fault("Runtime.MarshalError", "Unable to marshal response: %s" % e)


def _unmarshal(body: bytes):
    if _SCAN is not None:
        try:  # UTF-8 without leading or trailing space, as events come; anything else as json.loads does
            text = body.decode("utf-8")
            event, end = _SCAN(text, 0)
            if end == len(text):
                return event
        except Exception:
            pass
    try:
        return json.loads(body)
    except Exception as e:
        raise Fault("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % e)


# ---------------------------------------------------------------------------------------------------- errors


def make_error(message: str, error_type: str, stack_trace: list, request_id: str = "") -> dict:
    return {"errorMessage": message or "", "errorType": error_type or "", "requestId": request_id,
            "stackTrace": stack_trace or []}


def error_from_exception(exc: BaseException, request_id: str = "") -> dict:
    """Error object for an exception raised by user code, frames of this file at the top removed."""
    own = error_from_exception.__code__.co_filename
    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)]
    for i, frame in enumerate(frames):
        if frame[0] != own:
            frames = frames[i:]
            break
    # 4-tuples (no column info) so 3.11+ does not add ^^^ marker lines, as in awslambdaric.
    return make_error(str(exc), type(exc).__name__, traceback.format_list(frames), request_id)


def log_error(error: dict, stream) -> None:
    """Write an error like Lambda's text log sink: one record, lines joined by CR, indentation as NBSP."""
    line = "[ERROR]"
    if error["errorType"]:
        line += " " + error["errorType"]
    if error["errorMessage"]:
        line += (":" if error["errorType"] else "") + " " + error["errorMessage"]
    lines = [line, "Traceback (most recent call last):"]
    for element in error["stackTrace"]:
        for text in element.splitlines() or [""]:
            stripped = text.lstrip(" ")
            lines.append(NBSP * (len(text) - len(stripped)) + stripped)
    stream.write("\r".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------------- client


def _is_ipv4(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return False
    return True


class RuntimeClient:
    """Keep-alive HTTP/1.1 client for the Runtime API at ``host:port``, on a plain socket.

    http.client costs ~30 ms to import (ssl, email) and ~150 us per round trip parsing headers; the
    Runtime API needs one request shape and Content-Length bodies only, so this does just that.
    """

    def __init__(self, address: str, channel_fd=None) -> None:
        host, _, port = address.rpartition(":")
        self._address = (host or "127.0.0.1", int(port))
        self._prefix = "Host: %s\r\nUser-Agent: %s\r\n" % (address, USER_AGENT)
        self._next = b"GET %s/invocation/next HTTP/1.1\r\n%sContent-Length: 0\r\n\r\n" % (
            API.encode(), self._prefix.encode("latin-1"))
        self._sock = None
        self._buf = b""
        self._poll = None
        self._post_headers = {ctype: {"Content-Type": ctype} for ctype in ("application/json", "application/unknown")}
        #: lamina's socket pair (a Unix socket instead of loopback TCP, and frames instead of HTTP): used
        #: for the first connection only; should it close, the client reconnects to ``address`` like any other.
        self._channel = channel_fd
        self._frames = False  # the connection is lamina's socket pair

    def _connect(self):
        # No timeout: /next is a long poll, and user code may change socket's default timeout.
        if self._channel is not None:
            fd, self._channel = self._channel, None
            sock = socket.socket(fileno=fd)
            sock.set_inheritable(False)  # the handler's subprocesses get no Runtime API connection
            self._frames = True
            return self._use(sock)
        self._frames = False
        if _is_ipv4(self._address[0]):  # Lambda's address is a literal: no resolver, and getaddrinfo's idna
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # codec (with re, unicodedata: ~2.5 ms)
            try:
                sock.connect(self._address)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(self._address, timeout=None)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._use(sock)

    def _use(self, sock):
        self._sock, self._buf = sock, b""
        # Wait for data with poll(POLLIN) rather than in recv(): on a Unix socket, lamina reading what this
        # runtime sent wakes every task blocked in recv() on it (the "room to write" wake-up); a poll
        # waiter asked for POLLIN only and sleeps on. That halves this process's wake-ups per invocation.
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _roundtrip(self, method: str, path: str, body, headers) -> tuple:
        sock = self._sock or self._connect()
        body = body or b""
        extra = "".join("%s: %s\r\n" % item for item in headers.items()) if headers else ""
        head = "%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n" % (method, path, self._prefix, extra, len(body))
        try:
            sock.sendall(head.encode("latin-1") + body if len(body) < 65536 else head.encode("latin-1"))
            if len(body) >= 65536:
                sock.sendall(body)
            return self._read_response(sock)
        except BaseException:
            self.close()  # leave no half-used connection behind; the next request reconnects
            raise

    def _read_response(self, sock, headers_read: bool = True) -> tuple:
        """(status, headers, body) of the next response; `headers_read` False: a response whose headers
        nobody reads (the 202 for a result) — only its length and Connection are looked for, ({} given)."""
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            self._poll.poll()
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("Runtime API closed the connection")
            buf += chunk
            end = buf.find(b"\r\n\r\n")
        if headers_read:
            lines = buf[:end].decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}  # names in lower case
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = headers.get("content-length")
            close = headers.get("connection", "").lower() == "close"
        else:
            head = buf[:end].lower()
            status, headers = int(head[9:12]), {}
            found = _LENGTH.search(head)
            length = found and found.group(1)
            close = _CLOSE.search(head) is not None
        start = end + 4
        stop = start + int(length or 0)
        if len(buf) < stop:
            buf = self._fill(sock, buf, stop)
        body, self._buf = buf[start:stop], buf[stop:]
        if close:
            self.close()
        return status, headers, body

    def _fill(self, sock, buf: bytes, need: int) -> bytes:
        """`buf` and what arrives after it, until it holds at least `need` bytes."""
        parts, have = [buf], len(buf)
        while have < need:
            self._poll.poll()
            chunk = sock.recv(max(65536, need - have))
            if not chunk:
                raise ConnectionError("Runtime API closed the connection")
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)

    def _request(self, method: str, path: str, body=None, headers=None) -> tuple:
        try:
            return self._roundtrip(method, path, body, headers)
        except ConnectionError:  # the idle keep-alive connection was dropped: reconnect once
            return self._roundtrip(method, path, body, headers)

    def next_invocation(self) -> tuple:
        sock = self._sock or self._connect()
        if self._frames:
            return self._exchange(sock, _NEXT, self._read_event)
        status, headers, body = self._request("GET", API + "/invocation/next", None, None)
        if status != 200:
            raise RuntimeError("GET /invocation/next returned %d: %r" % (status, body[:200]))
        return headers, body

    def result_and_next(self, request_id: str, kind: str, body, detail: str) -> tuple:
        """Send the invocation's result (`kind` "response", `detail` its content type; or "error", `detail`
        its error type) and ask for the next event in ONE write. Returns the next event."""
        sock = self._sock or self._connect()
        if not self._frames:
            path = "%s/invocation/%s/%s" % (API, request_id, kind)
            return self.post_and_next(path, body, detail if kind == "response" else "application/json")
        rid, detail_b = request_id.encode(), detail.encode("latin-1")
        head = _FRAME.pack(b"R" if kind == "response" else b"E", len(rid), len(detail_b), len(body))
        return self._exchange(sock, b"".join((head, rid, detail_b, body, _NEXT)), self._read_event)

    def _exchange(self, sock, data: bytes, read) -> tuple:
        """Send `data` (ending with a `/next`) and return the event `read(sock)` gives. A dropped connection
        is left and the event asked for anew, by the address: a result sent with it may be lost, as with
        any client."""
        try:
            sock.sendall(data)
            return read(sock)
        except ConnectionError:
            self.close()
            return self.next_invocation()
        except BaseException:
            self.close()
            raise

    def _read_frame(self, sock) -> tuple:
        """(kind, a, b, body) of the next frame from lamina."""
        buf = self._buf
        if len(buf) < _FRAME_SIZE:
            buf = self._fill(sock, buf, _FRAME_SIZE)
        kind, la, lb, lc = _FRAME.unpack_from(buf)
        at_b = _FRAME_SIZE + la
        at_body = at_b + lb
        end = at_body + lc
        if len(buf) < end:
            buf = self._fill(sock, buf, end)
        self._buf = buf[end:]
        return kind, buf[_FRAME_SIZE:at_b], buf[at_b:at_body], buf[at_body:end]

    def _read_event(self, sock) -> tuple:
        """The answer to a `next` frame: (headers as the HTTP API's, lower-case, body). A field lamina
        leaves empty (no client context, no identity) is "" where HTTP would have no header."""
        while True:
            kind, a, _, body = self._read_frame(sock)
            if kind == b"V":
                return dict(zip(_EVENT_HEADERS, a.decode("utf-8").split("\0"))), body
            if kind != b"x":  # a refused result: nothing to do about it here (the 202 is not read either)
                raise RuntimeError("GET /invocation/next returned %s: %r" % (a.decode("latin-1"), body[:200]))

    def standby(self) -> dict:
        """lamina's standby: wait until a function is assigned; its environment variables."""
        sock = self._sock or self._connect()
        if not self._frames:
            status, _, body = self._request("GET", "/2018-06-01/lamina/standby")
            if status != 200:
                raise RuntimeError("GET /lamina/standby returned %d: %r" % (status, body[:200]))
            return json.loads(body)["environment"]
        try:
            sock.sendall(_FRAME.pack(b"S", 0, 0, 0))
            kind, a, _, body = self._read_frame(sock)
        except BaseException:
            self.close()
            raise
        if kind != b"A":
            raise RuntimeError("GET /lamina/standby returned %s: %r" % (a.decode("latin-1"), body[:200]))
        return dict(item.split("=", 1) for item in body.decode("utf-8").split("\0") if item)

    def post_and_next(self, path: str, body, content_type: str) -> tuple:
        """POST a result and ask for the next event in ONE write (HTTP/1.1 pipelining on lamina's own
        server): saves a round trip and a wake-up per invocation. Returns the next event."""
        sock = self._sock or self._connect()
        head = "POST %s HTTP/1.1\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
            path, self._prefix, content_type, len(body))
        return self._exchange(sock, b"".join((head.encode("latin-1"), body, self._next)), self._read_accepted_and_next)

    def _read_accepted_and_next(self, sock) -> tuple:
        self._read_response(sock, False)  # the 202 for the result
        status, headers, body = self._read_response(sock)
        if status != 200:
            raise RuntimeError("GET /invocation/next returned %d: %r" % (status, body[:200]))
        return headers, body

    def post_init_error(self, error: dict) -> None:
        sock = self._sock or self._connect()
        if self._frames:
            body, kind = json.dumps(error).encode("utf-8"), error["errorType"].encode("latin-1")
            try:
                sock.sendall(_FRAME.pack(b"I", 0, len(kind), len(body)) + kind + body)
            except BaseException:
                self.close()
                raise
            return
        headers = dict(self._post_headers["application/json"])
        headers[ERROR_TYPE_HEADER] = error["errorType"]
        self._request("POST", API + "/init/error", json.dumps(error).encode("utf-8"), headers)


# ------------------------------------------------------------------------------------------------ environment


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def setup_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass


def opt_dir(env) -> str:
    """Where the function's layers are: /opt, or (fallback process driver) the host directory lamina
    names in LAMINA_OPT_DIR, when this process can see it."""
    given = env.get("LAMINA_OPT_DIR")
    return given if given and os.path.isdir(given) else "/opt"


def setup_sys_path(task_root: str, runtime_dir: str, script_dir: str, opt: str = "/opt") -> None:
    """[task root, layer dirs] + the interpreter's own entries + [runtime dir (the SDK)], as on Lambda."""
    rest = list(sys.path)
    if rest and os.path.realpath(rest[0] or ".") == os.path.realpath(script_dir):
        del rest[0]
    head = [task_root, opt + "/python/lib/python%d.%d/site-packages" % sys.version_info[:2], opt + "/python"]
    tail = [runtime_dir]
    sys.path[:] = head + [p for p in rest if p not in head and p not in tail] + tail


class _RequestIdFilter(logging.Filter):
    def filter(self, record) -> bool:
        record.aws_request_id = _request_id
        return True


class LambdaLoggerHandler(logging.Handler):
    """Root handler writing Lambda's text format to the current ``sys.stdout``."""

    def emit(self, record) -> None:
        try:
            sys.stdout.write(self.format(record))
        except Exception:
            self.handleError(record)


def setup_logging() -> None:
    logging.Formatter.converter = time.gmtime  # Lambda runs in UTC (TZ=:UTC); lamina may not.
    handler = LambdaLoggerHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)  # the root level stays at WARNING, as on Lambda


def load_handler(spec: str):
    """Import ``module.function`` (module may be ``dir/mod``); Fault with awslambdaric's types and messages."""
    try:
        modname, fname = spec.rsplit(".", 1)
    except ValueError as e:
        raise Fault("Runtime.MalformedHandlerName", "Bad handler '%s': %s" % (spec, e))
    if modname.split(".")[0] in sys.builtin_module_names:
        raise Fault("Runtime.BuiltInModuleConflict", "Cannot use built-in module %s as a handler module" % modname)
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise Fault("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (modname, e))
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise Fault("Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (modname, e), trace)
    try:
        return getattr(module, fname)
    except AttributeError:
        raise Fault("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (fname, modname))


# ------------------------------------------------------------------------------------------------------ loop


def handle_invocation(client: RuntimeClient, handler, request_id: str, headers, body: bytes) -> tuple:
    """Run one invocation, post its result and return the next event (headers, body)."""
    try:
        context = LambdaContext(request_id, headers)
        event = _unmarshal(body)
        payload, content_type = _marshal(handler(event, context))
    except Fault as f:
        error = make_error(f.msg, f.error_type, f.trace, request_id)
    except Exception as e:
        error = error_from_exception(e, request_id)
    else:
        _flush()
        return client.result_and_next(request_id, "response", payload, content_type)
    log_error(error, sys.stdout)
    _flush()
    return client.result_and_next(request_id, "error", json.dumps(error).encode("utf-8"), "")


_TRACE_C: list = []


def _trace_c():
    """(libc's putenv, a "_X_AMZN_TRACE_ID=" buffer of TraceVariable.CAPACITY more bytes, a writable view of
    those) through ctypes, or None where they cannot be had. Made once per process tree: the zygote makes
    them before it forks (a CDLL and an array type are classes of their own; a forked runtime only copies
    the buffer's page when it first writes it)."""
    if not _TRACE_C:
        try:
            import ctypes
            putenv = ctypes.CDLL(None).putenv
            putenv.argtypes, putenv.restype = [ctypes.c_char_p], ctypes.c_int
            key = TraceVariable.KEY
            buffer = ctypes.create_string_buffer(key + b"=", len(key) + 1 + TraceVariable.CAPACITY)
            made = putenv, buffer, memoryview(buffer).cast("B")[len(key) + 1:]
        except Exception:
            made = None
        _TRACE_C.append(made)
    return _TRACE_C[0]


class TraceVariable:
    """``_X_AMZN_TRACE_ID``, set for each invocation as awslambdaric sets it: in ``os.environ`` and in the C
    environment that subprocesses inherit — but, in a warm environment, not by ``setenv(3)``: glibc keeps
    every value setenv was ever given (~150 bytes per invocation, which the environment never gets back:
    Max Memory Used grew 1.5 MB per 10,000 invocations, bench/warm_memory_bench.py) in a tree it searches
    on every call, cold in the caches of a CPU that 64 runtimes take turns on. Instead the C environment's
    entry is a buffer (``_trace_c``), handed to ``putenv(3)`` once (which keeps the pointer it is given)
    and rewritten in place; ``os.environ``'s mapping is updated directly. The plain ``os.environ`` path serves the first
    invocations of a runtime that has not imported ctypes (~5 ms; the zygote has), values longer than the
    buffer, removals, and any platform where this cannot be set up; code that sets the variable itself
    (through ``os.environ``) is noticed and the buffer put back before the next write."""

    NAME = "_X_AMZN_TRACE_ID"
    KEY = NAME.encode()
    CAPACITY = 1024
    #: Invocations served the plain way before ctypes is imported for this (if not imported already).
    PLAIN_FIRST = 64

    def __init__(self) -> None:
        self._countdown = 0 if "ctypes" in sys.modules else self.PLAIN_FIRST
        self._buffer = None  # the "NAME=value" C string the C environment points at, once set up
        self._view = None  # the buffer's value part, writable (a memoryview: no ctypes call per write)
        self._data = None  # os.environ's mapping: encoded names to encoded values
        self._last = None  # the bytes object last put in it; another there: code set the variable itself

    def set(self, value: str) -> None:
        data = self._data
        last = self._last  # None: the C entry is not the buffer (yet, or any more)
        if last is not None and data.get(self.KEY) is last:  # and no code has set the variable since
            raw = value.encode("utf-8", "surrogateescape")
            n = len(raw)
            if n < self.CAPACITY and b"\0" not in raw:
                view = self._view
                view[:n] = raw
                view[n] = 0
                data[self.KEY] = self._last = raw
                return
        self._set_slowly(value)

    def clear(self) -> None:
        if self.NAME in os.environ:
            del os.environ[self.NAME]  # unsetenv: the C environment lets go of the buffer
        self._last = None

    def _set_slowly(self, value: str) -> None:
        """The first value, one after code set the variable itself, one too long: os.environ's way, then
        (once the countdown is over and ctypes can be had) the buffer handed to putenv for the next ones."""
        os.environ[self.NAME] = value
        self._last = None
        if self._buffer is None:
            if self._countdown:  # > 0: invocations to go; -1: tried, for good
                self._countdown -= self._countdown > 0
                return
            self._countdown = -1  # one attempt only
            data = getattr(os.environ, "_data", None)
            made = _trace_c()
            if not isinstance(data, dict) or os.environ.encodekey(self.NAME) != self.KEY or made is None:
                return
            self._putenv, self._buffer, self._view = made
            self._data = data
        raw = self._data.get(self.KEY)
        if raw is None or len(raw) >= self.CAPACITY or b"\0" in raw:
            return
        self._view[:len(raw)] = raw
        self._view[len(raw)] = 0
        if self._putenv(self._buffer) == 0:
            self._last = raw


if "ctypes" in sys.modules:  # the zygote, which imports ctypes before this module: made before it forks
    _trace_c()


def serve(client: RuntimeClient, handler) -> None:
    global _request_id
    trace = TraceVariable()
    headers, body = client.next_invocation()
    while True:
        request_id = headers.get("lambda-runtime-aws-request-id") or ""
        _request_id = request_id
        trace_id = headers.get("lambda-runtime-trace-id")
        if trace_id:
            trace.set(trace_id)
        else:
            trace.clear()
        headers, body = handle_invocation(client, handler, request_id, headers, body)


def await_assignment(client: RuntimeClient) -> None:
    """Standby (lamina's own extension): this environment was started before any function needed it.

    Wait until lamina assigns a function, take its environment variables, and carry on as a normal
    start: the interpreter start-up has already been paid, which is what hides the cold start.
    """
    assignment = client.standby()
    os.environ.pop("LAMINA_STANDBY", None)
    os.environ.update(assignment)


def main() -> None:
    setup_stdio()
    env = os.environ
    channel = env.pop("_LAMINA_RUNTIME_FD", "")
    client = RuntimeClient(env["AWS_LAMBDA_RUNTIME_API"], int(channel) if channel.isdigit() else None)
    if env.get("LAMINA_STANDBY"):
        try:
            await_assignment(client)
        except (OSError, ValueError, RuntimeError) as e:
            sys.stderr.write("lamina bootstrap: no assignment: %s\n" % e)
            sys.exit(1)
    script_dir = os.path.dirname(os.path.abspath(__file__))
    task_root = env.get("LAMBDA_TASK_ROOT") or os.getcwd()
    os.chdir(task_root)
    setup_sys_path(task_root, env.get("LAMBDA_RUNTIME_DIR") or script_dir, script_dir, opt_dir(env))
    setup_logging()

    error = None
    try:
        handler = load_handler(env.get("_HANDLER", ""))
    except Fault as f:
        error = make_error(f.msg, f.error_type, f.trace)
    except Exception as e:
        error = error_from_exception(e)
    if error is not None:
        logging.warning(UNHANDLED_WARNING)
        log_error(error, sys.stderr)
        _flush()
        try:
            client.post_init_error(error)
        except Exception as e:
            sys.stderr.write("lamina bootstrap: could not post init error: %s\n" % e)
        sys.exit(1)

    LambdaContext._static = {attribute: env.get(name) for attribute, name in (
        ("function_name", "AWS_LAMBDA_FUNCTION_NAME"), ("function_version", "AWS_LAMBDA_FUNCTION_VERSION"),
        ("memory_limit_in_mb", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), ("log_group_name", "AWS_LAMBDA_LOG_GROUP_NAME"),
        ("log_stream_name", "AWS_LAMBDA_LOG_STREAM_NAME"))}
    try:
        serve(client, handler)
    except (OSError, ValueError, RuntimeError) as e:
        sys.stderr.write("lamina bootstrap: Runtime API failure: %s\n" % e)
        _flush()
        sys.exit(1)


if __name__ == "__main__":
    main()
