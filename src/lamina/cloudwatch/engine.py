"""CloudWatch's `AWS/Lambda` metrics computed from lamina's own records. Pure: data in, numbers out.

Every invocation's metering record (function, version, end time, duration, outcome) is a data point of
Invocations (1), Errors (1 or 0) and Duration (ms); every 429 is a Throttles point (1); and
ConcurrentExecutions is, per period, the most invocations whose [start, end] intervals overlap. Points
are grouped into periods aligned to the epoch (as CloudWatch does) and reduced with the statistic
asked for: SampleCount, Sum, Average, Minimum, Maximum or a percentile `pNN(.N)`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence

NAMESPACE = "AWS/Lambda"
METRICS = ("Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions")
UNITS = {"Invocations": "Count", "Errors": "Count", "Throttles": "Count", "Duration": "Milliseconds",
         "ConcurrentExecutions": "Count"}
STATISTICS = ("SampleCount", "Sum", "Average", "Minimum", "Maximum")
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d{1,10})?|100)")
DIMENSIONS = ("FunctionName", "Resource", "ExecutedVersion")


class MetricQueryError(ValueError):
    """A query CloudWatch would refuse (InvalidParameterValue), with its message."""


@dataclasses.dataclass(frozen=True, slots=True)
class Invocation:
    function: str
    version: str
    end_s: float
    duration_ms: float
    failed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Throttle:
    function: str
    at_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class Selector:
    """Which records a metric's dimensions select (no dimensions: the whole account)."""

    function: str | None = None
    version: str | None = None

    @classmethod
    def of(cls, dimensions: Sequence[tuple[str, str]]) -> Selector:
        found = dict(dimensions)
        unknown = set(found) - set(DIMENSIONS)
        if unknown:
            raise MetricQueryError(f"AWS/Lambda has no dimension {sorted(unknown)[0]!r}")
        function, version = found.get("FunctionName"), found.get("ExecutedVersion")
        if "Resource" in found:
            name, _, qualifier = found["Resource"].partition(":")
            function = function or name
            version = version or (qualifier if qualifier.isdigit() or qualifier == "$LATEST" else None)
        return cls(function, version)

    def wants(self, function: str, version: str | None = None) -> bool:
        return ((self.function is None or function == self.function)
                and (self.version is None or version is None or version == self.version))


def check_statistic(stat: str) -> None:
    if stat in STATISTICS:
        return
    match = _PERCENTILE.fullmatch(stat)
    if not match or float(match.group(1)) > 100:
        raise MetricQueryError(f"The statistic {stat!r} is not valid: use one of {', '.join(STATISTICS)} or pNN.NN")


def check_period(period: int) -> None:
    if period < 1 or (period >= 60 and period % 60) or (period < 60 and period not in (1, 5, 10, 20, 30)):
        raise MetricQueryError("The parameter Period must be 1, 5, 10, 20, 30 or a multiple of 60.")


def reduce(values: Sequence[float], stat: str) -> float:
    if stat == "SampleCount":
        return float(len(values))
    if stat == "Sum":
        return float(sum(values))
    if stat == "Average":
        return sum(values) / len(values)
    if stat == "Minimum":
        return float(min(values))
    if stat == "Maximum":
        return float(max(values))
    rank = float(stat[1:]) / 100  # nearest rank, as CloudWatch's percentiles on raw data
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(rank * len(ordered)) - 1)])


def _bucket(t: float, period: int) -> int:
    return int(t // period) * period


def points(metric: str, selector: Selector, invocations: Iterable[Invocation],
           throttles: Iterable[Throttle]) -> list[tuple[float, float]]:
    """(time, value) data points of `metric` (not ConcurrentExecutions, which is per period)."""
    if metric == "Throttles":
        return [(t.at_s, 1.0) for t in throttles if selector.wants(t.function)]
    chosen = (i for i in invocations if selector.wants(i.function, i.version))
    if metric == "Invocations":
        return [(i.end_s, 1.0) for i in chosen]
    if metric == "Errors":
        return [(i.end_s, 1.0 if i.failed else 0.0) for i in chosen]
    if metric == "Duration":
        return [(i.end_s, i.duration_ms) for i in chosen]
    raise MetricQueryError(f"AWS/Lambda has no metric {metric!r} in lamina")


def concurrency(selector: Selector, invocations: Iterable[Invocation], start_s: float, end_s: float,
                period: int) -> dict[int, float]:
    """Per period: the most invocations running at one moment (their [start, end] intervals overlapping)."""
    edges: list[tuple[float, int]] = []
    for i in invocations:
        if selector.wants(i.function, i.version):
            edges += [(i.end_s - i.duration_ms / 1000, 1), (i.end_s, -1)]
    edges.sort(key=lambda e: (e[0], e[1]))  # an end and a start at the same moment do not overlap
    peaks: dict[int, float] = {}
    running = 0
    for t, delta in edges:
        running += delta
        if delta > 0 and start_s <= t < end_s:
            key = _bucket(t, period)
            peaks[key] = max(peaks.get(key, 0.0), float(running))
    return peaks


def series(metric: str, stat: str, selector: Selector, invocations: Sequence[Invocation],
           throttles: Sequence[Throttle], start_s: float, end_s: float, period: int) -> list[tuple[int, float]]:
    """(period start, value) for every period in [start, end) that has data, oldest first."""
    check_statistic(stat)
    check_period(period)
    if end_s <= start_s:
        raise MetricQueryError("The parameter StartTime must be less than the parameter EndTime.")
    if metric not in METRICS:
        raise MetricQueryError(f"AWS/Lambda has no metric {metric!r} in lamina (it has {', '.join(METRICS)})")
    if metric == "ConcurrentExecutions":
        return sorted(concurrency(selector, invocations, start_s, end_s, period).items())
    grouped: dict[int, list[float]] = {}
    for t, value in points(metric, selector, invocations, throttles):
        if start_s <= t < end_s:
            grouped.setdefault(_bucket(t, period), []).append(value)
    return [(key, reduce(values, stat)) for key, values in sorted(grouped.items())]
