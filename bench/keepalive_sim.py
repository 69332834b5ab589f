#!/usr/bin/env python3
"""Keep-alive policies replayed on a synthetic day of traffic: cold starts and idle memory.

    .venv/bin/python bench/keepalive_sim.py [--seed 1] [--functions 400]

The workload mixes the shapes the Azure Functions trace study reports (Shahrad et al., ATC '20):
timer-driven functions (periods of 1 to 60 minutes, a little jitter), Poisson traffic at rates from
one per minute to one per few hours, and bursts (a handful of calls a second apart, hours apart). Each
invocation lasts 200 ms; each function keeps at most one idle environment of 128 MB. The policies are
lamina's own pure functions (scheduler/keepalive.py): `fixed` (10 minutes, Lambda's observed
behaviour) and `histogram` (per-function 99th percentile of idle times, fixed until it has history).
The public Azure trace is not on this machine, so this is a synthetic stand-in with the same shapes.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from lamina.scheduler.keepalive import IdleHistogram, keepalive_s, prewarm_s  # noqa: E402

DAY_S = 24 * 3600
DURATION_S = 0.2
MEMORY_GB = 0.125


def workload(rng: random.Random, functions: int) -> list[list[float]]:
    traces = []
    for _ in range(functions):
        kind = rng.random()
        times: list[float] = []
        if kind < 0.35:  # timer
            period = rng.choice([60, 120, 300, 600, 900, 1200, 1800, 3600])
            t = rng.uniform(0, period)
            while t < DAY_S:
                times.append(t + rng.uniform(-2, 2))
                t += period
        elif kind < 0.8:  # Poisson
            rate = 1 / rng.choice([60, 300, 900, 1800, 3600, 4 * 3600])
            t = rng.expovariate(rate)
            while t < DAY_S:
                times.append(t)
                t += rng.expovariate(rate)
        else:  # bursts
            gap = rng.choice([1800, 3600, 2 * 3600, 6 * 3600])
            t = rng.uniform(0, gap)
            while t < DAY_S:
                times += [t + i for i in range(rng.randint(3, 20))]
                t += gap * rng.uniform(0.8, 1.2)
        traces.append(sorted(max(0.0, x) for x in times))
    return traces


def simulate(traces: list[list[float]], policy: str, fixed_s: float = 600.0) -> tuple[int, int, float]:
    """Replay: an environment is warm if the gap fits its windows; idle memory is what was held."""
    invocations = cold = 0
    idle_gb_s = 0.0
    for times in traces:
        histogram = IdleHistogram()
        last_end: float | None = None
        for start in times:
            invocations += 1
            if last_end is None:
                cold += 1
            else:
                gap = max(0.0, start - last_end)
                keep = keepalive_s(histogram, fixed_s, policy)
                warm_from = prewarm_s(histogram, policy)  # 0: kept loaded from the end of the last call
                if warm_from <= gap <= keep:
                    idle_gb_s += (gap - warm_from) * MEMORY_GB
                else:
                    cold += 1
                    held = 0.0 if gap < warm_from else keep - warm_from
                    idle_gb_s += held * MEMORY_GB
                histogram.add(gap)
            last_end = start + DURATION_S
        if last_end is not None:
            keep = keepalive_s(histogram, fixed_s, policy)
            warm_from = prewarm_s(histogram, policy)
            idle_gb_s += max(0.0, min(keep, DAY_S - last_end) - warm_from) * MEMORY_GB
    return invocations, cold, idle_gb_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--functions", type=int, default=400)
    args = parser.parse_args()
    traces = workload(random.Random(args.seed), args.functions)
    print("| policy | invocations | cold starts | cold % | idle memory GB-s (day) |")
    print("|---|---|---|---|---|")
    for policy, fixed_s in [("fixed", m * 60.0) for m in (10, 20, 30, 45, 60, 90)] + [("histogram", 600.0)]:
        n, cold, gb_s = simulate(traces, policy, fixed_s)
        label = f"fixed {fixed_s / 60:.0f} min" if policy == "fixed" else "histogram (fixed 10 min until it has history)"
        print(f"| {label} | {n} | {cold} | {100 * cold / n:.2f} | {gb_s:,.0f} |")


if __name__ == "__main__":
    main()
