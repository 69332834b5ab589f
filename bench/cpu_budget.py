#!/usr/bin/env python3
"""Where the host's CPU goes per warm invoke at 64 clients: lamina beside serverless-offline.

    .venv/bin/python bench/cpu_budget.py [--peers-dir /tmp/lamina-peers] [--rounds 4] [--seconds 5]

Both targets up at once, throughput windows alternating between them (as `invoke_bench.py --interleave`),
each target's hello world in Python (or `--runtime node`). For every window, the CPU time (user + system,
from /proc) of each part of the host divided by the invokes answered, in µs per invoke:

  * lamina: its event loop's thread; its other threads (the writer, the I/O pool); the functions'
    processes (every process in an environment's cgroup, and the server's other descendants: zygotes,
    inits, runtimes);
  * serverless-offline: its Node.js processes (Node.js handlers run in them); its Python workers (one
    per concurrent request);
  * the load generator (this process and its children: bench/loadgen.c, or with --loadgen asyncio this
    process's asyncio client; the same client code for both);
  * the rest of the host (kernel threads, interrupts, anything else running), idle and stolen time.

The sum of busy parts and idle is the host's two (or N) CPUs' time per invoke. On a host whose CPUs are
all busy, the throughput ratio of two targets is the inverse ratio of their busy µs per invoke: the
figure says how much of each target's cost must go for a given speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.burst_bench import environment_pids  # noqa: E402
from bench.invoke_bench import LOADGEN, Lamina, ServerlessOffline, raw_request, run_throughput  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def _ticks(path: str) -> int:
    """user + system clock ticks of one /proc/<pid>[/task/<tid>]/stat; 0 once it is gone."""
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _children_ticks() -> int:
    """Clock ticks of this process's waited-for children: the C load generator's, once it has exited."""
    t = os.times()
    return round((t.children_user + t.children_system) * HZ)


def _host() -> dict[str, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return {"busy": v[0] + v[1] + v[2] + v[5] + v[6], "idle": v[3] + v[4], "steal": v[7]}


def _parts(target, server: psutil.Process) -> dict[str, list[str]]:
    """Part name -> the /proc stat files whose ticks it sums, as of now."""
    try:
        descendants = server.children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if isinstance(target, Lamina):
        loop = f"/proc/{server.pid}/task/{server.pid}/stat"
        threads = [f"/proc/{server.pid}/task/{tid}/stat" for tid in os.listdir(f"/proc/{server.pid}/task")
                   if int(tid) != server.pid]
        functions = {p.pid for p in descendants} | environment_pids()
        return {"event loop": [loop], "other server threads": threads,
                "functions' processes": [f"/proc/{pid}/stat" for pid in sorted(functions)]}
    node, python = [], []
    for p in [server, *descendants]:
        try:
            name = p.name()
        except psutil.NoSuchProcess:
            continue
        (python if name.startswith("python") else node).append(f"/proc/{p.pid}/stat")
    return {"Node.js processes": node, "Python workers": python}


def window(target, request: bytes, clients: int, seconds: float) -> dict[str, object]:
    server = psutil.Process(target.proc.pid)
    parts = _parts(target, server)
    before = {name: {path: _ticks(path) for path in paths} for name, paths in parts.items()}
    me, host = _ticks(f"/proc/{os.getpid()}/stat") + _children_ticks(), _host()
    result = run_throughput(target.port, request, clients, seconds)
    after_parts = _parts(target, server)  # processes started during the window count from zero
    host2, me2 = _host(), _ticks(f"/proc/{os.getpid()}/stat") + _children_ticks()
    invokes = result["rps"] * seconds or 1
    per = {}
    for name, paths in after_parts.items():
        ticks = sum(_ticks(path) - before[name].get(path, 0) for path in paths)
        per[name] = ticks
    per["load generator"] = me2 - me
    busy = host2["busy"] - host["busy"]
    per["rest of the host"] = max(0, busy - sum(per.values()))
    per["idle"] = host2["idle"] - host["idle"]
    per["stolen"] = host2["steal"] - host["steal"]
    us = {name: round(t / HZ / invokes * 1e6, 1) for name, t in per.items()}
    us["busy total"] = round(busy / HZ / invokes * 1e6, 1)
    return {"rps": result["rps"], "us_per_invoke": us}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers-dir", type=Path, default=Path("/tmp/lamina-peers"))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--runtime", choices=("python", "node"), default="python")
    parser.add_argument("--loadgen", choices=("c", "asyncio"), default="c",
                        help="the load generator: bench/loadgen.c (default) or Python asyncio streams")
    args = parser.parse_args()
    LOADGEN["kind"] = args.loadgen
    targets: list[object] = [Lamina()]
    if ServerlessOffline.available(args.peers_dir):
        targets.append(ServerlessOffline(args.peers_dir))
    else:
        print(f"serverless-offline not installed under {args.peers_dir}; lamina alone", file=sys.stderr)
    windows: dict[str, list[dict[str, object]]] = {t.name: [] for t in targets}
    try:
        for t in targets:
            t.start()
        requests = {t.name: raw_request(t.port, t.functions()[args.runtime], t.signed) for t in targets}
        for t in targets:  # scale out first
            run_throughput(t.port, requests[t.name], args.clients, args.seconds)
        for r in range(args.rounds):
            for t in (targets if r % 2 == 0 else list(reversed(targets))):
                windows[t.name].append(window(t, requests[t.name], args.clients, args.seconds))
                print(json.dumps({t.name: windows[t.name][-1]}), file=sys.stderr)
    finally:
        for t in targets:
            t.stop()
    print(json.dumps(windows, indent=1))
    print(f"\nµs of CPU per invoke, median of {args.rounds} windows of {args.seconds:g} s, "
          f"{args.clients} clients ({args.runtime} hello world):\n")
    print("| target | inv/s | part | µs per invoke |\n|---|---|---|---|")
    for name, ws in windows.items():
        rps = round(statistics.median(w["rps"] for w in ws))
        for part in ws[0]["us_per_invoke"]:
            value = round(statistics.median(w["us_per_invoke"][part] for w in ws), 1)
            print(f"| {name} | {rps:g} | {part} | {value} |")


if __name__ == "__main__":
    main()
