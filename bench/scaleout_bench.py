#!/usr/bin/env python3
"""Scale-out under load: how fast a busy host adds environments, and what a cold start costs meanwhile.

    .venv/bin/python bench/scaleout_bench.py [--runtime node|python] [--clients 64] [--seconds 16]
    .venv/bin/python bench/scaleout_bench.py --trees /work/oldtree /work/main --rounds 2   # A/B, alternating

One `lamina serve` per round (from the given source tree: its `src` on PYTHONPATH, as bench/ab_bench.py
does), a hello world with no environment yet, then `--clients` keep-alive clients invoking it for
`--seconds`. Every 0.5 s the server's /metrics gives the function's environments (every state) and the
window's invokes; meanwhile, once a second, a second function of the same runtime gets a configuration
change and one invoke: a cold start on a host that is busy serving (end to end, and the `Init Duration`
it reports). Reported per round: seconds until the function has `--clients` environments, the invokes/s
of the first and the last quarter of the load, and the cold probes' p50/max.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.ab_bench import start  # noqa: E402
from bench.invoke_bench import MEMORY_MB, PAYLOAD, _throughput, raw_request, zip_of  # noqa: E402

PROBE = {"python": ("python3.11", "handler.py", 'def hello(event, context):\n    return "probe"\n'),
         "node": (None, "handler.js", 'exports.hello = async () => "probe";\n')}


def environments(port: int, function: str) -> int:
    """The function's environments in every state, from /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    prefix = f'lamina_environments{{function="{function}",'
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines() if line.startswith(prefix))


def one_round(tree: Path, runtime: str, clients: int, seconds: float) -> dict[str, object]:
    target = start(tree, {})
    try:
        function = {"python": "pyHello", "node": "nodeHello"}[runtime]
        if function not in target.functions().values():
            raise SystemExit(f"no {runtime} on this host")
        node_runtime = target.client.get_function_configuration(FunctionName="nodeHello")["Runtime"] \
            if runtime == "node" else None
        probe_runtime, probe_file, probe_code = PROBE[runtime]
        target.client.create_function(FunctionName="probe", Runtime=probe_runtime or node_runtime,
                                      Handler="handler.hello", Role="arn:aws:iam::000000000000:role/x",
                                      MemorySize=MEMORY_MB, Code={"ZipFile": zip_of(probe_file, probe_code)})
        if runtime == "python":  # pyHello was invoked once at start: begin from no environment
            target.client.update_function_configuration(FunctionName=function, Description="fresh")
        time.sleep(2)  # the standbys made at start are up
        request = raw_request(target.port, function, True)
        result: dict[str, object] = {}
        load = threading.Thread(target=lambda: result.update(
            asyncio.run(_throughput(target.port, request, clients, seconds))))
        samples: list[tuple[float, int]] = []
        colds: list[tuple[float, float]] = []
        began = time.monotonic()
        load.start()
        next_probe = began + 1.0
        i = 0
        while load.is_alive():
            now = time.monotonic()
            samples.append((round(now - began, 1), environments(target.port, function)))
            if now >= next_probe and now - began < seconds - 1.0:
                i += 1
                target.client.update_function_configuration(FunctionName="probe", Description=f"cold {i}")
                t = time.perf_counter()
                out = target.client.invoke(FunctionName="probe", Payload=PAYLOAD, LogType="Tail")
                e2e = (time.perf_counter() - t) * 1000
                tail = base64.b64decode(out["LogResult"]).decode()
                init = [float(x.split("Init Duration: ")[1].split(" ms")[0]) for x in tail.splitlines()
                        if "Init Duration: " in x]
                colds.append((e2e, init[0] if init else 0.0))
                next_probe = time.monotonic() + 1.0
            time.sleep(0.5)
        load.join()
        full = next((t for t, n in samples if n >= clients), None)
        e2e = sorted(c[0] for c in colds)
        inits = sorted(c[1] for c in colds)
        return {"tree": str(tree), "rps": result.get("rps"), "seconds_to_full": full,
                "environments_at_end": samples[-1][1] if samples else 0,
                "cold_e2e_p50_ms": round(statistics.median(e2e), 1) if e2e else None,
                "cold_e2e_max_ms": round(e2e[-1], 1) if e2e else None,
                "cold_init_p50_ms": round(statistics.median(inits), 1) if inits else None,
                "probes_ms": [[round(a, 1), round(b, 1)] for a, b in colds], "timeline": samples}
    finally:
        target.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", nargs="+", type=Path, default=[Path(__file__).resolve().parent.parent])
    parser.add_argument("--runtime", choices=("python", "node"), default="node")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for r in range(args.rounds):
        for tree in (args.trees if r % 2 == 0 else list(reversed(args.trees))):
            row = one_round(tree, args.runtime, args.clients, args.seconds)
            print(json.dumps({k: v for k, v in row.items() if k != "timeline"}), file=sys.stderr, flush=True)
            rows.append(row)
    print(json.dumps(rows, indent=1))
    print(f"\n| tree | {args.runtime}, c={args.clients}, {args.seconds:g} s | inv/s | s to {args.clients} environments "
          "| environments at end | cold start under load: e2e p50 / max ms | Init Duration p50 ms |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['tree']} | | {row['rps']} | {row['seconds_to_full']} | {row['environments_at_end']} "
              f"| {row['cold_e2e_p50_ms']} / {row['cold_e2e_max_ms']} | {row['cold_init_p50_ms']} |")


if __name__ == "__main__":
    main()
