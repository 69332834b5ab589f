#!/usr/bin/env python3
"""Asynchronous invocation: events accepted (202s) per second and delivered per second, fsync on.

    .venv/bin/python bench/async_bench.py [--events 10000] [--clients 16]

Three phases on one data directory, with the queue's commits durable (SQLite WAL, synchronous=FULL;
a 202 is sent only after its commit):
  1. accept: a server with LAMINA_ASYNC_WORKERS=0 (it queues, delivers nothing) takes N Event invokes
     from C keep-alive connections (raw HTTP, SigV4-signed once); 202s per second, p50/p99 latency;
  2. crash and drain: that server is killed with SIGKILL, a new one starts on the same directory and
     delivers the N queued events; delivered per second from its start (cold environments included),
     and the count (every event delivered, none twice: nothing was running at the kill);
  3. steady state: N more events sent while the same server delivers them; 202s per second, and
     delivered per second until the queue is empty.
The function is a no-op Python handler with MemorySize 1769 (one full vCPU), as in invoke_bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.invoke_bench import KEY, SECRET, client_for, free_port, pct, read_reply, wait_port, zip_of  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOOP = 'def handler(event, context):\n    return {"ok": True}\n'
PAYLOAD = b'{"key": "value"}'


def start(data: Path, port: int, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, LAMINA_ACCESS_KEY_ID=KEY, LAMINA_SECRET_ACCESS_KEY=SECRET, **(extra_env or {}))
    proc = subprocess.Popen([str(ROOT / ".venv/bin/python"), "-m", "lamina", "serve", "--port", str(port),
                             "--data-dir", str(data)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def event_request(port: int, function: str) -> bytes:
    """One Event invoke, SigV4-signed once (valid for 15 minutes, so it can be replayed)."""
    path = f"/2015-03-31/functions/{function}/invocations"
    req = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}{path}", data=PAYLOAD,
                     headers={"X-Amz-Invocation-Type": "Event"})
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(req)
    headers = {"Host": f"127.0.0.1:{port}", "Content-Length": str(len(PAYLOAD)),
               **{k: v for k, v in req.headers.items() if k.lower() not in ("content-length", "host")}}
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + PAYLOAD


def statistics(port: int) -> dict[str, object]:
    req = AWSRequest(method="GET", url=f"http://127.0.0.1:{port}/_lamina/async")
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(req)
    with urllib.request.urlopen(urllib.request.Request(req.url, headers=dict(req.headers)), timeout=30) as reply:
        return json.loads(reply.read())


def pending(stats: dict[str, object]) -> int:
    queue = stats["queue"]
    assert isinstance(queue, dict)
    return int(queue["ready"]) + int(queue["delayed"]) + int(queue["leased"])


async def _send(port: int, request: bytes, events: int, clients: int) -> dict[str, float]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    todo = iter(range(events))

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in todo:
                t = time.perf_counter()
                writer.write(request)
                status, _ = await read_reply(reader)
                latencies.append((time.perf_counter() - t) * 1000)
                code = status.split()[1].decode()
                statuses[code] = statuses.get(code, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    if statuses != {"202": events}:
        raise RuntimeError(f"not every event was accepted: {statuses}")
    return {"accepted_per_s": round(events / elapsed), "p50_ms": round(pct(latencies, 50), 2),
            "p99_ms": round(pct(latencies, 99), 2), "seconds": round(elapsed, 2)}


def send(port: int, request: bytes, events: int, clients: int) -> dict[str, float]:
    return asyncio.run(_send(port, request, events, clients))


def wait_delivered(port: int, succeeded: int, started: float, timeout: float = 600) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        stats = statistics(port)
        if int(stats["succeeded"]) >= succeeded and pending(stats) == 0:  # type: ignore[call-overload]
            elapsed = time.perf_counter() - started
            return {"seconds": round(elapsed, 2), "stats": stats}  # type: ignore[dict-item]
        if time.monotonic() > deadline:
            raise RuntimeError(f"not delivered in time: {stats}")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    n, clients = args.events, args.clients
    data = Path(tempfile.mkdtemp(prefix="lamina-async-bench-"))
    results: dict[str, object] = {"events": n, "clients": clients}
    try:
        port = free_port()
        first = start(data, port, {"LAMINA_ASYNC_WORKERS": "0"})
        client_for(port).create_function(
            FunctionName="work", Runtime="python3.11", Handler="app.handler", Role="arn:aws:iam::000000000000:role/x",
            Code={"ZipFile": zip_of("app.py", NOOP)}, MemorySize=1769)
        send(port, event_request(port, "work"), 200, clients)  # warm-up (connections, caches)
        results["accept"] = send(port, event_request(port, "work"), n, clients)
        queued = pending(statistics(port))
        first.send_signal(signal.SIGKILL)
        first.wait()

        port = free_port()
        started = time.perf_counter()
        second = start(data, port)
        try:
            drained = wait_delivered(port, queued, started)
            stats = drained.pop("stats")
            assert isinstance(stats, dict)
            results["drain_after_kill"] = {
                "queued": queued, "delivered": stats["succeeded"], "failed": stats["failed"],
                "delivered_per_s": round(queued / float(drained["seconds"])), "seconds": drained["seconds"]}
            before = int(stats["succeeded"])
            started = time.perf_counter()
            accepted = send(port, event_request(port, "work"), n, clients)
            delivered = wait_delivered(port, before + n, started)
            results["steady"] = {**accepted, "delivered_per_s": round(n / float(delivered["seconds"])),
                                 "all_delivered_s": delivered["seconds"]}
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=120)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print(json.dumps(results, indent=2))
    a, d, s = results["accept"], results["drain_after_kill"], results["steady"]
    assert isinstance(a, dict) and isinstance(d, dict) and isinstance(s, dict)
    print()
    print("| phase | events | 202s/s | 202 p50 / p99 ms | delivered/s | check |")
    print("|---|---|---|---|---|---|")
    print(f"| accept only (no workers) | {n} | {a['accepted_per_s']} | {a['p50_ms']} / {a['p99_ms']} | – | "
          f"{d['queued']} queued |")
    print(f"| kill -9, restart, drain | {d['queued']} | – | – | {d['delivered_per_s']} | "
          f"{d['delivered']} delivered, {d['failed']} failed |")
    print(f"| steady (accept while delivering) | {n} | {s['accepted_per_s']} | {s['p50_ms']} / {s['p99_ms']} | "
          f"{s['delivered_per_s']} | all delivered in {s['all_delivered_s']} s |")


if __name__ == "__main__":
    main()
