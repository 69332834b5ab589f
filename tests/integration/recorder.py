"""A loopback HTTP listener sandboxed functions call back to (they see the host network, not its files).

A function POSTs a JSON object with a `key`; the recorder keeps every body in arrival order and answers
how many bodies with that key it has seen so far (a function can count its own attempts with it).
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from typing import Any

#: The start of an event-source-mapping handler module: `record_batch(event)` posts {"key": the function's
#: name, "records": the batch} to the recorder (CB); each test module's own `handler` goes on from here.
RECORD_BATCH = '''
import base64, json, os, time, urllib.request

def record_batch(event):
    request = urllib.request.Request(os.environ["CB"], data=json.dumps(
        {"key": os.environ["AWS_LAMBDA_FUNCTION_NAME"], "records": event["Records"]}).encode())
    urllib.request.urlopen(request, timeout=10).read()
'''


def seen(recorder: Recorder, fn: str) -> list[dict]:
    """Every record the function `fn` posted with record_batch, in arrival order."""
    return [r for b in recorder.where(lambda b: b.get("key") == fn) for r in b["records"]]


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


#: Handlers for a test function package (all in app.py; pick one with Handler=app.<name>). CB is the
#: recorder's URL, given to each function as an environment variable.
FUNCTIONS = '''
import json, os, time, urllib.request

def post(body):
    request = urllib.request.Request(os.environ["CB"], data=json.dumps(body).encode())
    return json.loads(urllib.request.urlopen(request, timeout=10).read())

def flaky(event, context):
    """Fails until its third attempt."""
    seen = post({"key": context.aws_request_id, "kind": "attempt", "event": event})
    if seen < 3:
        raise RuntimeError(f"attempt {seen} fails")
    return {"attempts": seen}

def fail(event, context):
    post({"key": context.aws_request_id, "kind": "attempt", "event": event})
    raise ValueError("always fails")

def ok(event, context):
    return {"echo": event}

def slow(event, context):
    post({"key": "slow-start", "event": event})
    time.sleep(event.get("sleep", 0.3))
    post({"key": "slow", "kind": "ran", "event": event})
    return {"slept": True}

def record(event, context):
    """A destination: reports what it was given."""
    post({"key": "record", "kind": "record", "event": event})
    return "recorded"

def ids(event, context):
    """A destination: reports the id carried in the record's original event."""
    post({"key": "id", "id": event["requestPayload"]["id"]})
    return "ok"
'''


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with recorder._lock:
                    recorder.bodies.append(body)
                    recorder.times.append(time.monotonic())
                    key = str(body.get("key"))
                    recorder._counts[key] = count = recorder._counts.get(key, 0) + 1
                answer = str(count).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                return None

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def where(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._lock:
            return [b for b in self.bodies if predicate(b)]

    def arrival_times(self, predicate: Callable[[dict[str, Any]], bool]) -> list[float]:
        """When each body matching `predicate` arrived (time.monotonic())."""
        with self._lock:
            return [t for t, b in zip(self.times, self.bodies) if predicate(b)]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], count: int = 1,
                 timeout: float = 20.0) -> list[dict[str, Any]]:
        """The bodies matching `predicate`, once there are at least `count` of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.where(predicate)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
