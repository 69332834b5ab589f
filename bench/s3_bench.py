#!/usr/bin/env python3
"""lamina's S3: one large object put and got through boto3, and small objects per second.

    .venv/bin/python bench/s3_bench.py [--size-mb 100] [--small 500] [--aws-chunked]

* large: a sparse file of --size-mb MiB uploaded with put_object (over plain HTTP boto3 signs the
  payload, so it reads the file twice: once for SHA-256, once to send; --aws-chunked makes boto3 send
  what it sends over TLS instead: aws-chunked, UNSIGNED payload, a CRC32 trailer), then downloaded with
  get_object and hashed; MiB/s each way, and the server's peak RSS (VmHWM) before and after.
* small: --small 1 KiB objects put, then got, one client, sequentially; operations per second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse as real_urlparse

import boto3
import botocore.httpchecksum
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.invoke_bench import KEY, SECRET, free_port, wait_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--aws-chunked", action="store_true")
    args = parser.parse_args()
    if args.aws_chunked:
        botocore.httpchecksum.urlparse = lambda url: real_urlparse(url.replace("http://", "https://", 1))
    with tempfile.TemporaryDirectory(prefix="lamina-s3-bench-") as tmp:
        port = free_port()
        env = dict(os.environ, LAMINA_ACCESS_KEY_ID=KEY, LAMINA_SECRET_ACCESS_KEY=SECRET)
        proc = subprocess.Popen([str(ROOT / ".venv/bin/python"), "-m", "lamina", "serve", "--port", str(port),
                                 "--data-dir", f"{tmp}/data"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                              aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                              config=Config(retries={"total_max_attempts": 1}, read_timeout=600))
            s3.create_bucket(Bucket="bench")
            source = Path(tmp) / "sparse"
            with open(source, "wb") as f:
                f.truncate(args.size_mb * MIB)
            rss_before = peak_rss_mb(proc.pid)
            started = time.perf_counter()
            with open(source, "rb") as f:
                s3.put_object(Bucket="bench", Key="large", Body=f)
            put_s = time.perf_counter() - started
            started = time.perf_counter()
            digest, size = hashlib.md5(), 0
            for chunk in s3.get_object(Bucket="bench", Key="large")["Body"].iter_chunks(MIB):
                digest.update(chunk)
                size += len(chunk)
            get_s = time.perf_counter() - started
            assert size == args.size_mb * MIB
            rss_after = peak_rss_mb(proc.pid)
            body = b"x" * 1024
            started = time.perf_counter()
            for i in range(args.small):
                s3.put_object(Bucket="bench", Key=f"small/{i}", Body=body)
            small_put = args.small / (time.perf_counter() - started)
            started = time.perf_counter()
            for i in range(args.small):
                s3.get_object(Bucket="bench", Key=f"small/{i}")["Body"].read()
            small_get = args.small / (time.perf_counter() - started)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    result = {
        "size_mib": args.size_mb, "mode": "aws-chunked (unsigned, CRC32 trailer)" if args.aws_chunked
        else "signed payload (SHA-256)",
        "put_s": round(put_s, 2), "put_mib_s": round(args.size_mb / put_s, 1),
        "get_s": round(get_s, 2), "get_mib_s": round(args.size_mb / get_s, 1),
        "server_peak_rss_mb_before": round(rss_before, 1), "server_peak_rss_mb_after": round(rss_after, 1),
        "small_put_per_s": round(small_put), "small_get_per_s": round(small_get), "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
