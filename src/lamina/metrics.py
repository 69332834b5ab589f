"""Counters and histograms per function, rendered in the Prometheus text format at /metrics."""

from __future__ import annotations

import bisect
import collections
from collections.abc import Iterable

#: Duration buckets (milliseconds), Prometheus `le` upper bounds.
BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self.invocations: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.throttles: collections.Counter[str] = collections.Counter()
        self.cold_starts: collections.Counter[str] = collections.Counter()
        self._buckets: dict[str, list[int]] = {}
        self._sum_ms: collections.Counter[str] = collections.Counter()
        #: (epoch s, function) of recent throttles, for CloudWatch's Throttles metric (since the server started).
        self.throttle_log: collections.deque[tuple[float, str]] = collections.deque(maxlen=200_000)

    def invoked(self, function: str, duration_ms: float, failed: bool, cold: bool) -> None:
        self.invocations[function] += 1
        if failed:
            self.errors[function] += 1
        if cold:
            self.cold_starts[function] += 1
        counts = self._buckets.get(function)
        if counts is None:
            counts = self._buckets[function] = [0] * (len(BUCKETS_MS) + 1)
        counts[bisect.bisect_left(BUCKETS_MS, duration_ms)] += 1
        self._sum_ms[function] += duration_ms

    def throttled(self, function: str, at_s: float) -> None:
        self.throttles[function] += 1
        self.throttle_log.append((at_s, function))

    def render(self, concurrent: dict[str, int], environments: dict[tuple[str, str], int]) -> str:
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {value:g}" for labels, value in samples)

        def per_function(counter: dict[str, int] | collections.Counter[str]) -> list[tuple[str, float]]:
            return [(f'{{function="{_label(f)}"}}', v) for f, v in sorted(counter.items())]

        family("lamina_invocations_total", "counter", "Invocations that ran.", per_function(self.invocations))
        family("lamina_errors_total", "counter", "Invocations that ended in a function error.",
               per_function(self.errors))
        family("lamina_throttles_total", "counter", "Invocations refused with 429.", per_function(self.throttles))
        family("lamina_cold_starts_total", "counter", "Invocations that started a new environment.",
               per_function(self.cold_starts))
        family("lamina_concurrent_executions", "gauge", "Invocations running now.", per_function(concurrent))
        family("lamina_environments", "gauge", "Execution environments by function and state.",
               [(f'{{function="{_label(f)}",state="{_label(s)}"}}', n) for (f, s), n in sorted(environments.items())])
        out.append("# HELP lamina_duration_ms Invocation duration in milliseconds.")
        out.append("# TYPE lamina_duration_ms histogram")
        for function, counts in sorted(self._buckets.items()):
            label = _label(function)
            running = 0
            for bound, count in zip((*BUCKETS_MS, "+Inf"), counts):
                running += count
                out.append(f'lamina_duration_ms_bucket{{function="{label}",le="{bound}"}} {running}')
            out.append(f'lamina_duration_ms_sum{{function="{label}"}} {self._sum_ms[function]:g}')
            out.append(f'lamina_duration_ms_count{{function="{label}"}} {running}')
        return "\n".join(out) + "\n"
