#!/usr/bin/env python3
"""`lamina dev` reload time: a save of the handler → the first response from the new code.

    .venv/bin/python bench/dev_bench.py [-n 20]

Starts lamina and `lamina dev` on a small Python function, then n times: rewrite app.py with a new
answer and invoke (boto3, back to back) until the new answer comes back; reports p50/p99 of the time
from the write to that response. Target (DESIGN.md): ≤ 200 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.invoke_bench import KEY, ROOT, SECRET, lamina_server, pct  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20)
    args = parser.parse_args()
    with lamina_server() as (_, port, client), tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        (src / "app.py").write_text("def handler(e, c):\n    return 0\n")
        (src / "lamina.json").write_text(json.dumps({"FunctionName": "dev", "Runtime": "python3.11",
                                                     "Handler": "app.handler"}))
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
        dev = subprocess.Popen([str(ROOT / ".venv/bin/python"), "-m", "lamina", "dev", str(src), "--endpoint-url",
                                f"http://127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    if json.loads(client.invoke(FunctionName="dev")["Payload"].read()) == 0:
                        break
                except client.exceptions.ResourceNotFoundException:
                    time.sleep(0.05)
            times = []
            for i in range(1, args.n + 1):
                time.sleep(0.3)
                started = time.perf_counter()
                (src / "app.py").write_text(f"def handler(e, c):\n    return {i}\n")
                while json.loads(client.invoke(FunctionName="dev")["Payload"].read()) != i:
                    pass
                times.append((time.perf_counter() - started) * 1000)
        finally:
            dev.terminate()
            dev.wait(timeout=10)
    print(f"| save → first new response | p50 {pct(times, 50):.0f} ms | p99 {pct(times, 99):.0f} ms | n {args.n} |")


if __name__ == "__main__":
    main()
