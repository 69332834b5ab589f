#!/usr/bin/env python3
"""A/B of two lamina source trees: both servers up at once, short throughput windows alternating.

    git worktree add /work/oldtree REV && cp -a build /work/oldtree/     # the tree to compare against
    .venv/bin/python bench/ab_bench.py /work/oldtree /work/main --clients 1 --rounds 16 --seconds 1.5

(`cp -a`, not `-r`: build/lang's copy of /usr/bin/python3.X counts only with its time kept, else the
other tree's functions run on another interpreter; runtimes/registry.py `distribution_tree`.)

Each tree's `src` goes on PYTHONPATH of its own `lamina serve` (the same interpreter and packages), each
server gets one hello-world function, and the two are measured window by window in alternating order
(A B, B A, A B, ...), so that this VM's slow spells (hypervisor steal, a neighbour's cache) fall on both
alike: the way to see a change of a few percent that sequential runs bury in drift. Per tree: every
window's invokes/s, the CPU per invoke (µs) of the server and of the functions' processes (as
bench/cpu_budget.py parts them), the medians, and the CPU stolen during its windows. Extra `KEY=VALUE`
arguments are set in both servers' environment; `--a-env` / `--b-env` in one's only, so one tree given
twice compares two settings:

    .venv/bin/python bench/ab_bench.py . . --a-env LAMINA_RESERVE_LOOP_CPU=on --b-env LAMINA_RESERVE_LOOP_CPU=off

`--a-python` / `--b-python` run a server on another interpreter (a venv with lamina installed), e.g. to
compare CPython versions for the server process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cpu_budget import window  # noqa: E402
from bench.invoke_bench import Lamina, raw_request, stolen_s, throughput  # noqa: E402


def start(tree: Path, extra: dict[str, str], python: Path | None = None) -> Lamina:
    """A server from `tree`'s source with `extra` in its environment (this process's is left as it was),
    on `python` (a venv's interpreter with lamina's dependencies) or the project's own."""
    target = Lamina(python)
    saved = dict(os.environ)
    os.environ.update(extra, PYTHONPATH=str(tree / "src"))
    try:
        target.start()  # makes pyHello (and nodeHello where node is installed)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="source tree A (a checkout: A/src is put on PYTHONPATH)")
    parser.add_argument("b", type=Path, help="source tree B")
    parser.add_argument("env", nargs="*", metavar="KEY=VALUE", help="set in both servers' environment")
    parser.add_argument("--a-env", action="append", default=[], metavar="KEY=VALUE",
                        help="set in A's environment only (the same tree twice compares two settings)")
    parser.add_argument("--b-env", action="append", default=[], metavar="KEY=VALUE", help="set in B's only")
    parser.add_argument("--a-python", type=Path, help="the interpreter A's server runs on (default: .venv's)")
    parser.add_argument("--b-python", type=Path, help="the interpreter B's server runs on")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--runtime", choices=("python", "node"), default="python")
    args = parser.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.env)
    function = {"python": "pyHello", "node": "nodeHello"}[args.runtime]
    targets = []
    try:
        for tree, own, python in ((args.a, args.a_env, args.a_python), (args.b, args.b_env, args.b_python)):
            target = start(tree.resolve(), dict(extra, **dict(kv.split("=", 1) for kv in own)), python)
            name = " ".join([str(tree), *own, *([str(python)] if python else [])])
            targets.append((name, target, raw_request(target.port, function, True)))
            throughput(target.port, targets[-1][2], args.clients, 2)  # scale out, warm up
        windows: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in targets}
        for r in range(args.rounds):
            for name, target, request in (targets if r % 2 == 0 else targets[::-1]):
                steal = stolen_s()
                out = window(target, request, args.clients, args.seconds)
                us = out["us_per_invoke"]
                windows[name].append({"rps": out["rps"],
                                      "server_cpu_us": round(us["event loop"] + us["other server threads"]),
                                      "functions_cpu_us": round(us["functions' processes"]),
                                      "steal_s": round(stolen_s() - steal, 2)})
    finally:
        for _, target, _ in targets:
            target.stop()
    result = {name: {"median_rps": statistics.median(w["rps"] for w in ws),
                     "median_server_cpu_us": statistics.median(w["server_cpu_us"] for w in ws),
                     "median_functions_cpu_us": statistics.median(w["functions_cpu_us"] for w in ws),
                     "steal_s": round(sum(w["steal_s"] for w in ws), 2), "windows": ws}
              for name, ws in windows.items()}
    print(json.dumps({"clients": args.clients, "seconds": args.seconds, "runtime": args.runtime,
                      "env": extra, "trees": result}, indent=1))
    print(f"| tree | {args.runtime}, c={args.clients}: median inv/s | median server µs/invoke "
          "| median functions' µs/invoke | steal s |")
    print("|---|---|---|---|---|")
    for name, r in result.items():
        print(f"| {name} | {r['median_rps']} | {r['median_server_cpu_us']} | {r['median_functions_cpu_us']} "
              f"| {r['steal_s']} |")


if __name__ == "__main__":
    main()
