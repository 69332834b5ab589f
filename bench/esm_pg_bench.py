#!/usr/bin/env python3
"""PostgreSQL row changes through an event source mapping: rows per second, and COMMIT -> function lag.

    .venv/bin/python bench/esm_pg_bench.py [--rows 20000] [--txn 100] [--batches 100,1000] [--lag-rows 300]

A throwaway PostgreSQL 15 cluster (tests/integration/postgres_cluster.py) and a `lamina serve` reading it.
  1. throughput: for each BatchSize, a mapping on a fresh table (StartingPosition LATEST); N rows are
     inserted in transactions of T rows as fast as one connection can, and the clock runs from the first
     INSERT until the mapping's slot has been advanced past the last commit (every row invoked and
     checkpointed). The function is a no-op Python handler with MemorySize 1769 (one full vCPU).
  2. lag: one row per transaction, one every 20 ms; the function notes time.time() when it starts and the
     rows' commit times (ApproximateCreationDateTime, PostgreSQL's commit timestamp); lag = the difference
     (same host, same clock), reported as p50/p99/max.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.invoke_bench import KEY, SECRET, free_port, pct, wait_port, zip_of  # noqa: E402
from tests.integration.postgres_cluster import Cluster, start_cluster  # noqa: E402
from tests.integration.recorder import Recorder  # noqa: E402

NOOP = 'def handler(event, context):\n    return None\n'
LAG = '''
import json, os, time, urllib.request

def handler(event, context):
    started = time.time()
    commits = [r["dynamodb"]["ApproximateCreationDateTime"] for r in event["Records"]]
    request = urllib.request.Request(os.environ["CB"], data=json.dumps(
        {"key": "lag", "started": started, "commits": commits}).encode())
    urllib.request.urlopen(request, timeout=10).read()
'''
ROLE = "arn:aws:iam::000000000000:role/x"


def arn(table: str) -> str:
    return f"arn:lamina:postgres:us-east-1:000000000000:table/app/public.{table}"


def start_lamina(data: Path, port: int, cluster: Cluster, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, LAMINA_ACCESS_KEY_ID=KEY, LAMINA_SECRET_ACCESS_KEY=SECRET, **cluster.env())
    out = open(log, "ab")
    proc = subprocess.Popen([str(ROOT / ".venv/bin/python"), "-m", "lamina", "serve", "--port", str(port),
                             "--data-dir", str(data)], env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_port(port)
    return proc


def mapping_on_new_table(lam, cluster: Cluster, name: str, function: str, batch: int) -> tuple[str, str]:
    with cluster.connect() as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, body text)")
    uid = lam.create_event_source_mapping(EventSourceArn=arn(name), FunctionName=function, BatchSize=batch,
                                          StartingPosition="LATEST")["UUID"]
    slot = "lamina_" + uid.replace("-", "")
    deadline = time.monotonic() + 30
    with cluster.connect() as conn:
        while not conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchall():
            if time.monotonic() > deadline:
                raise TimeoutError("the mapping did not create its slot")
            time.sleep(0.01)
    return uid, slot


def throughput(lam, cluster: Cluster, rows: int, txn: int, batch: int) -> tuple[float, float]:
    table = f"tp_{batch}"
    uid, slot = mapping_on_new_table(lam, cluster, table, "noop", batch)
    with cluster.connect() as conn:
        started = time.monotonic()
        for base in range(0, rows, txn):
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.executemany(f"INSERT INTO {table} (id, body) VALUES (%s, %s)",
                                    [(i, f"row {i}") for i in range(base, min(base + txn, rows))])
        inserted = time.monotonic() - started
        end = conn.execute("SELECT pg_current_wal_flush_lsn()").fetchone()[0]
        while True:
            confirmed = conn.execute("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s",
                                     (slot,)).fetchone()[0]
            if confirmed >= end:
                break
            if time.monotonic() - started > 600:
                raise TimeoutError("rows not processed")
            time.sleep(0.005)
        elapsed = time.monotonic() - started
    lam.delete_event_source_mapping(UUID=uid)
    with cluster.connect() as conn:
        time.sleep(0.5)
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                     (slot,))
    return rows / elapsed, rows / inserted


def lag(lam, cluster: Cluster, recorder: Recorder, rows: int) -> list[float]:
    uid, slot = mapping_on_new_table(lam, cluster, "lag", "lag", 100)
    with cluster.connect() as conn:
        for i in range(rows):
            conn.execute("INSERT INTO lag (id, body) VALUES (%s, 'x')", (i,))
            time.sleep(0.02)
    bodies = recorder.wait_for(lambda b: b.get("key") == "lag", 1, timeout=5)
    deadline = time.monotonic() + 30
    while sum(len(b["commits"]) for b in bodies) < rows and time.monotonic() < deadline:
        time.sleep(0.05)
        bodies = recorder.where(lambda b: b.get("key") == "lag")
    lam.delete_event_source_mapping(UUID=uid)
    return [(b["started"] - c) * 1000 for b in bodies for c in b["commits"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--txn", type=int, default=100, help="rows per transaction in the throughput runs")
    parser.add_argument("--batches", default="100,1000", help="BatchSize values, comma-separated")
    parser.add_argument("--lag-rows", type=int, default=300)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the cleanup below on `timeout`/kill
    cluster = start_cluster()
    recorder = Recorder()
    with tempfile.TemporaryDirectory(prefix="esm-pg-bench-") as tmp:
        base = Path(tmp)
        port = free_port()
        server = start_lamina(base / "data", port, cluster, base / "lamina.log")
        try:
            lam = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                               aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                               config=BotoConfig(retries={"total_max_attempts": 1}, read_timeout=120))
            for name, code, env in (("noop", NOOP, {}), ("lag", LAG, {"CB": recorder.url})):
                lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", MemorySize=1769,
                                    Role=ROLE, Code={"ZipFile": zip_of("app.py", code)},
                                    Environment={"Variables": env})
                lam.invoke(FunctionName=name, Payload=b'{"Records": []}')  # one warm environment to start from
            print(f"PostgreSQL 15 + wal2json (fsync off), lamina on 127.0.0.1:{port}; cpus {os.cpu_count()}")
            for batch in (int(b) for b in args.batches.split(",")):
                rate, insert_rate = throughput(lam, cluster, args.rows, args.txn, batch)
                print(f"throughput BatchSize={batch:<5} {args.rows} rows in transactions of {args.txn}: "
                      f"{rate:8.0f} rows/s through the function  (inserts alone: {insert_rate:.0f} rows/s)")
            lags = lag(lam, cluster, recorder, args.lag_rows)
            print(f"lag COMMIT -> function start, {len(lags)} rows one per transaction every 20 ms: "
                  f"p50 {pct(lags, 50):.1f} ms  p99 {pct(lags, 99):.1f} ms  max {max(lags):.1f} ms")
        finally:
            server.terminate()
            server.wait(timeout=30)
            recorder.close()
            cluster.stop()


if __name__ == "__main__":
    main()
