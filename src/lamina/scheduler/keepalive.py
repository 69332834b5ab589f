"""Pure keep-alive decisions: how long an idle environment of a function is worth keeping.

The fixed policy (Lambda's observed behaviour) keeps every idle environment for the same time
(`LAMINA_KEEPALIVE_S`, default 10 minutes). The hybrid-histogram policy (Shahrad et al., "Serverless
in the Wild", ATC '20) learns each function's idle times — the gaps between one invocation ending and
the next one starting — in one-minute bins over four hours, and keeps its environments for the 99th
percentile of those gaps (plus a margin): a function called every 15 minutes stays warm, where a fixed
10-minute window makes every call cold; a function called in bursts a second apart is let go after a
minute, where a fixed window holds its memory for ten. Until a function has enough history, or when
its gaps fall beyond the histogram, the fixed window applies.

When nearly all of a function's gaps are long, its environment is not even kept through them: it is
let go after the invocation and a fresh one is started shortly before the next call is due (the
policy's pre-warm window, 85% of the 5th percentile of the gaps).

When the host's memory budget for environments is reached, idle environments are evicted in order of
least value: the expected chance of being reused before they expire, per MB they hold.
"""

from __future__ import annotations

import dataclasses
import math

BIN_S = 60.0
BINS = 240  # four hours of one-minute bins
MIN_SAMPLES = 10
PERCENTILE = 0.99
MARGIN = 1.10


@dataclasses.dataclass(slots=True)
class IdleHistogram:
    counts: list[int] = dataclasses.field(default_factory=lambda: [0] * BINS)
    total: int = 0
    out_of_bounds: int = 0

    def add(self, idle_s: float) -> None:
        index = int(idle_s // BIN_S)
        if index >= BINS:
            self.out_of_bounds += 1
        else:
            self.counts[index] += 1
        self.total += 1

    def percentile_s(self, fraction: float) -> float | None:
        """Upper edge of the bin holding the given fraction of idle times (None if beyond the range)."""
        needed = math.ceil(fraction * self.total)
        running = 0
        for index, count in enumerate(self.counts):
            running += count
            if running >= needed:
                return (index + 1) * BIN_S
        return None


def keepalive_s(histogram: IdleHistogram | None, fixed_s: float, policy: str) -> float:
    """How long an idle environment of this function is kept."""
    if policy != "histogram" or histogram is None or histogram.total < MIN_SAMPLES:
        return fixed_s
    if histogram.out_of_bounds > (1 - PERCENTILE) * histogram.total:
        return fixed_s  # gaps longer than the histogram covers: not a pattern it can learn
    p99 = histogram.percentile_s(PERCENTILE)
    return fixed_s if p99 is None else max(BIN_S, p99 * MARGIN)


PREWARM_PERCENTILE = 0.05
PREWARM_MARGIN = 0.85
MIN_PREWARM_S = 120.0


def prewarm_s(histogram: IdleHistogram | None, policy: str) -> float:
    """Seconds after an invocation at which to start a fresh environment, having let the old one go.

    0 means keep the environment loaded (the usual case). Only when nearly all of a function's idle
    times are long (its 5th percentile is two minutes or more) is holding memory through the gap a
    waste: the environment is unloaded and a new one is started shortly before the next call is due."""
    if policy != "histogram" or histogram is None or histogram.total < MIN_SAMPLES:
        return 0.0
    needed = math.ceil(PREWARM_PERCENTILE * histogram.total)
    running = 0
    for index, count in enumerate(histogram.counts):
        running += count
        if running >= needed:
            head = index * BIN_S  # lower edge: the gap is at least this long
            return head * PREWARM_MARGIN if head >= MIN_PREWARM_S else 0.0
    return 0.0


def reuse_value(idle_for_s: float, keep_s: float, rate_per_s: float, memory_mb: float) -> float:
    """Chance that an idle environment is used again before it expires, per MB it holds.

    Arrivals are taken as Poisson at the function's recent rate over the time it has left."""
    left = max(0.0, keep_s - idle_for_s)
    return (1.0 - math.exp(-rate_per_s * left)) / max(memory_mb, 1.0)
