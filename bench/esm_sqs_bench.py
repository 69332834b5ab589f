#!/usr/bin/env python3
"""Records per second through an SQS event source mapping into a no-op function, moto as the queue.

    .venv/bin/python bench/esm_sqs_bench.py [--messages 3000] [--configs 10:0:5,10:0:20,100:1:10]

For each configuration BatchSize:MaximumBatchingWindowInSeconds:MaximumConcurrency: a mapping on a fresh
queue is created and enabled, then N messages are fed in, keeping at most --backlog queued (moto's
ReceiveMessage slows down in proportion to the queue's length), and the clock runs until the queue is
empty (every message received, invoked, deleted); records/s = N / that time; invocations from lamina's
metering. For scale, the same N messages are also drained by a plain boto3 receive+delete loop with
as many threads and no function at all (moto's own ceiling on this machine).
The function is a no-op Python handler with MemorySize 1769 (one full vCPU), as in invoke_bench.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.invoke_bench import KEY, SECRET, free_port, wait_port, zip_of  # noqa: E402
from tests.integration.moto_server import MotoServer, start_moto  # noqa: E402

NOOP = 'def handler(event, context):\n    return None\n'


def start_lamina(data: Path, port: int, moto: MotoServer, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, LAMINA_ACCESS_KEY_ID=KEY, LAMINA_SECRET_ACCESS_KEY=SECRET, **moto.env())
    out = open(log, "ab")
    proc = subprocess.Popen([str(ROOT / ".venv/bin/python"), "-m", "lamina", "serve", "--port", str(port),
                             "--data-dir", str(data)], env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_port(port)
    return proc


def fill(moto: MotoServer, messages: int, **attributes: str) -> tuple[str, str]:
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:8]}", Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def send(start: int) -> None:
        client = moto.client("sqs")
        for base in range(start, min(start + 500, messages), 10):
            client.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": f'{{"n": {i}}}'} for i in range(base, min(base + 10, messages))])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(0, messages, 500)))
    return url, arn


def remaining(sqs, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def wait_empty(sqs, url: str, timeout: float = 600.0) -> float:
    started = time.monotonic()
    while remaining(sqs, url) > 0:
        if time.monotonic() - started > timeout:
            raise TimeoutError("queue not drained")
        time.sleep(0.05)
    return time.monotonic()


def feed(moto: MotoServer, url: str, messages: int, backlog: int) -> None:
    """Send `messages`, keeping at most about `backlog` in the queue: moto's ReceiveMessage costs time in
    proportion to the queue's length (0.8 s at 1,000 messages), so a deep queue measures moto, not lamina."""
    sqs = moto.client("sqs")
    sent = 0
    while sent < messages:
        if remaining(sqs, url) >= backlog:
            time.sleep(0.005)
            continue
        for base in range(sent, min(sent + 50, messages), 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": f'{{"n": {i}}}'} for i in range(base, min(base + 10, messages))])
        sent = min(sent + 50, messages)


def through_mapping(lam, moto: MotoServer, function: str, messages: int, backlog: int, batch: int, window: int,
                    concurrency: int) -> tuple[float, int]:
    url, arn = fill(moto, 0, VisibilityTimeout="60")
    sqs = moto.client("sqs")
    before = invocations(lam, function)
    uid = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=function, BatchSize=batch,
                                          MaximumBatchingWindowInSeconds=window,
                                          ScalingConfig={"MaximumConcurrency": concurrency})["UUID"]
    while lam.get_event_source_mapping(UUID=uid)["State"] != "Enabled":
        time.sleep(0.05)
    started = time.monotonic()
    feed(moto, url, messages, backlog)
    ended = wait_empty(sqs, url)
    lam.delete_event_source_mapping(UUID=uid)
    return messages / (ended - started), invocations(lam, function) - before


def invocations(lam, function: str) -> int:
    """Invocations so far, from lamina's metering (GET /_lamina/usage, flushed on read)."""
    req = AWSRequest(method="GET", url=f"{lam.meta.endpoint_url}/_lamina/usage?by=function")
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(req)
    with urllib.request.urlopen(urllib.request.Request(req.url, headers=dict(req.headers)), timeout=30) as reply:
        rows = json.loads(reply.read())["rows"]
    return sum(int(r["requests"]) for r in rows if r["key"] == function)


def plain_drain(moto: MotoServer, messages: int, backlog: int, threads: int) -> float:
    """The same feed drained by boto3 receive+delete loops, no function: moto's own ceiling."""
    url, _ = fill(moto, 0, VisibilityTimeout="60")
    done = [0]
    lock = __import__("threading").Lock()

    def drain() -> None:
        sqs = moto.client("sqs")
        while True:
            with lock:
                if done[0] >= messages:
                    return
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            if got:
                sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                                 for i, m in enumerate(got)])
                with lock:
                    done[0] += len(got)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads + 1) as pool:
        drains = [pool.submit(drain) for _ in range(threads)]
        feed(moto, url, messages, backlog)
        for d in drains:
            d.result()
    return messages / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--backlog", type=int, default=100, help="keep at most this many messages queued")
    parser.add_argument("--configs", default="10:0:2,10:0:5,10:0:20",
                        help="BatchSize:WindowSeconds:MaximumConcurrency, comma-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="esm-bench-") as tmp:
        base = Path(tmp)
        moto = start_moto(base / "moto.log")
        port = free_port()
        server = start_lamina(base / "data", port, moto, base / "lamina.log")
        try:
            lam = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                               aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                               config=BotoConfig(retries={"total_max_attempts": 1}, read_timeout=120))
            lam.create_function(FunctionName="noop", Runtime="python3.11", Handler="app.handler", MemorySize=1769,
                                Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": zip_of("app.py", NOOP)})
            lam.invoke(FunctionName="noop", Payload=b"{}")  # one warm environment to start from
            print(f"{args.messages} messages per run, at most {args.backlog} queued at a time; moto_server; "
                  f"cpus {os.cpu_count()}")
            for spec in args.configs.split(","):
                batch, window, concurrency = (int(x) for x in spec.split(":"))
                rate, invoked = through_mapping(lam, moto, "noop", args.messages, args.backlog, batch, window,
                                                concurrency)
                batches = f"{invoked} invocations, {args.messages / max(invoked, 1):.1f} records each"
                print(f"mapping BatchSize={batch:<4} window={window}s MaximumConcurrency={concurrency:<3} "
                      f"{rate:8.0f} records/s  ({batches})")
            for threads in (5, 20):
                print(f"plain boto3 receive+delete, {threads:>2} threads, no function: "
                      f"{plain_drain(moto, args.messages, args.backlog, threads):8.0f} records/s")
        finally:
            server.terminate()
            server.wait(timeout=30)
            moto.stop()


if __name__ == "__main__":
    main()
