#!/usr/bin/env python3
"""Does a warm environment's memory grow with the invocations it serves? lamina alone.

    .venv/bin/python bench/warm_memory_bench.py [--seconds 10] [--rounds 4] [--memory 128] [--only node]

One hello-world function per runtime (Python; Node.js and Ruby where installed) served by one environment
(one client, keep-alive, raw HTTP): after each round of `--seconds` of back-to-back invokes, the
`Max Memory Used` of the REPORT line (the environment cgroup's peak, as Lambda reports it). A runtime
that keeps something per invocation shows it here long before a function's memory limit does.
`--memory` sets the functions' MemorySize (default the bench's 1769 MB): Node.js sizes V8's heap to it,
and with 1.5 GB of old space V8 lets garbage pile up for a long time, which hides a small leak.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.invoke_bench import MEMORY_MB, Lamina, _throughput, raw_request, zip_of  # noqa: E402

RUBY_HELLO = "def hello(event:, context:)\n  { 'statusCode' => 200, 'body' => 'hi' }\nend\n"


def add_ruby(target: Lamina) -> str | None:
    """A Ruby hello world beside the bench's Python and Node.js ones, where a ruby runtime is registered."""
    from lamina.runtimes.registry import RuntimeRegistry

    found = [r.id for r in RuntimeRegistry.discover().all() if r.family == "ruby"]
    if not found:
        return None
    target.client.create_function(FunctionName="rbHello", Runtime=found[0], Handler="handler.hello",
                                  Role="arn:aws:iam::000000000000:role/x", MemorySize=MEMORY_MB,
                                  Code={"ZipFile": zip_of("handler.rb", RUBY_HELLO)})
    return "rbHello"


def max_memory_mb(target: Lamina, function: str) -> int:
    result = target.client.invoke(FunctionName=function, Payload=b"{}", LogType="Tail")
    log = base64.b64decode(result["LogResult"]).decode()
    return int(log.split("Max Memory Used: ")[1].split(" ")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--memory", type=int, default=None, metavar="MB", help="the functions' MemorySize")
    parser.add_argument("--only", action="append", default=[], choices=("python", "node", "ruby"))
    args = parser.parse_args()
    target = Lamina()
    out: dict[str, list[dict[str, int]]] = {}
    try:
        target.start()
        functions = target.functions()
        ruby = add_ruby(target)
        if ruby:
            functions["ruby"] = ruby
        for runtime, function in functions.items():
            if args.only and runtime not in args.only:
                continue
            if args.memory:
                target.client.update_function_configuration(FunctionName=function, MemorySize=args.memory)
            request = raw_request(target.port, function, True)
            rows = out[runtime] = [{"invocations": 1, "max_memory_mb": max_memory_mb(target, function)}]
            done = 1
            for _ in range(args.rounds):
                done += asyncio.run(_throughput(target.port, request, 1, args.seconds))["rps"] * args.seconds + 1
                rows.append({"invocations": round(done), "max_memory_mb": max_memory_mb(target, function)})
            print(json.dumps({runtime: rows}), file=sys.stderr)
    finally:
        target.stop()
    print(json.dumps(out, indent=1))
    print("| runtime | invocations served → Max Memory Used (MB) | growth per 10,000 invocations "
          "| the same over the second half |")
    print("|---|---|---|---|")
    for runtime, rows in out.items():
        steps = ", ".join(f"{r['invocations']:,} → {r['max_memory_mb']}" for r in rows)
        # from the second reading: the first invocations also grow the heaps to their working size (and a
        # garbage-collected heap may take a while longer to settle: the second half shows a leak alone)
        print(f"| {runtime} | {steps} | {growth(rows[1], rows[-1]):.2f} MB "
              f"| {growth(rows[len(rows) // 2], rows[-1]):.2f} MB |")


def growth(first: dict[str, int], last: dict[str, int]) -> float:
    """MB of Max Memory Used gained per 10,000 invocations between two readings."""
    span = last["invocations"] - first["invocations"]
    return (last["max_memory_mb"] - first["max_memory_mb"]) / span * 10_000 if span else 0.0


if __name__ == "__main__":
    main()
