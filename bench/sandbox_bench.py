#!/usr/bin/env python3
"""Sandbox creation cost and cold starts: 100 cold invokes of a Python hello world per mode.

    .venv/bin/python bench/sandbox_bench.py [-n 100]

Modes: `isolated + standby` (the default: bubblewrap, cgroups, /tmp volume, a standby sandbox ready),
`isolated, no standby` (LAMINA_PREWARM=0: everything starts on the invoke path), `process, no standby`
(LAMINA_SANDBOX=process: no isolation at all). A cold invoke is the first invoke after a configuration
change (a new revision needs a new environment); 0.2 s pass between invokes so a standby can refill.
Reported: end-to-end invoke latency through boto3 and lamina's own `Init Duration` (spawn to the
runtime's first /next, i.e. sandbox creation plus interpreter and handler import).
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.invoke_bench import PAYLOAD, PY_HELLO, lamina_server, pct, zip_of  # noqa: E402

MODES = {
    "isolated + standby": {},
    "isolated, no standby": {"LAMINA_PREWARM": "0"},
    "process, no standby": {"LAMINA_SANDBOX": "process", "LAMINA_PREWARM": "0"},
}


def run(mode_env: dict[str, str], n: int) -> dict[str, float]:
    with lamina_server(mode_env) as (_, _, client):
        client.create_function(FunctionName="cold", Runtime="python3.11", Handler="handler.hello",
                               Role="arn:aws:iam::000000000000:role/x",
                               Code={"ZipFile": zip_of("handler.py", PY_HELLO)})
        client.invoke(FunctionName="cold", Payload=PAYLOAD)
        e2e, init = [], []
        for i in range(n):
            client.update_function_configuration(FunctionName="cold", Environment={"Variables": {"RUN": str(i)}})
            time.sleep(0.2)
            t = time.perf_counter()
            out = client.invoke(FunctionName="cold", Payload=PAYLOAD, LogType="Tail")
            e2e.append((time.perf_counter() - t) * 1000)
            log = base64.b64decode(out["LogResult"]).decode()
            init += [float(x.split("Init Duration: ")[1].split(" ms")[0]) for x in log.splitlines()
                     if "Init Duration: " in x]
        return {"e2e_p50": pct(e2e, 50), "e2e_p99": pct(e2e, 99), "init_p50": pct(init, 50),
                "init_p99": pct(init, 99), "n": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100)
    args = parser.parse_args()
    print("| mode | cold invoke end to end p50 / p99 ms | Init Duration (spawn → ready) p50 / p99 ms | n |")
    print("|---|---|---|---|")
    for name, mode_env in MODES.items():
        r = run(mode_env, args.n)
        print(f"| {name} | {r['e2e_p50']:.1f} / {r['e2e_p99']:.1f} | {r['init_p50']:.1f} / {r['init_p99']:.1f} "
              f"| {r['n']} |", flush=True)


if __name__ == "__main__":
    main()
