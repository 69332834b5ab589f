"""The dispatch window: how many invocations may be handed to warm environments at once before the next
waits its turn (pure decisions; the scheduler does the waiting).

Each environment is a process of its own. Under load on a small host, handing every request to an idle
environment the moment it arrives makes dozens of runtimes runnable together on the same CPUs: each then
runs with caches the others have just filled with their own memory, and a warm Python invocation cost
twice the CPU with 64 runtimes taking turns as with 16 (`bench/`; docs/benchmarks.md, seventeenth
session). The window holds a warm hand-off back while `width` invocations are *fresh* (handed over less
than `fresh_s` ago and not finished): the next request goes, when one finishes, to the environment it
left — still hot in the caches — and fewer environments take turns.

An invocation stops counting when it finishes or when it has run `fresh_s`, whichever is first: one that
sleeps, waits on the network or computes for long holds no place, so slow functions still scale out
(the window then hands over at most `width / fresh_s` invocations per second, far above what one host
answers) and a request never waits longer than `fresh_s` for its turn. Cold starts (no idle environment)
do not wait for the window. Nothing is refused here: a request that waits is already admitted (it counts
against the concurrency limits like any other in flight).
"""

from __future__ import annotations

import collections
import math

#: Fresh invocations per CPU: fewer leaves the event loop too few answers to batch per wake-up.
PER_CPU = 6
#: How long an invocation counts (s): a warm hello world takes ~0.1 ms of runtime CPU, and under load
#: 1–3 ms from hand-over to answer, most of it in the event loop's queue.
FRESH_S = 0.010


def width_for(setting: str, cpus: int) -> int:
    """The window's width from LAMINA_DISPATCH_WINDOW (checked by config.load): auto (PER_CPU per CPU),
    off or 0 (no window), or a number."""
    if setting == "auto":
        return PER_CPU * max(1, cpus)
    return 0 if setting == "off" else int(setting)


#: A function takes part while the fastest of its recent invocations took less than this (ms).
QUICK_MS = 1.0
#: Invocations per measuring period; the fastest of the last one or two periods decides.
PERIOD = 64


class Pace:
    """Whether a function's invocations are short (a place in the window is then worth waiting for).

    An invocation's duration under load is mostly waiting (for a CPU, for the event loop), so the
    fastest one says what the function itself takes: a hello world's is ~0.2 ms with 64 clients, where
    its median is several ms. A function that sleeps, waits on the network or computes for a millisecond
    or more never waits for the window."""

    __slots__ = ("quick", "_best", "_last", "_n")

    def __init__(self) -> None:
        self.quick = True  # until measured: a function's first invocation starts a new environment anyway
        self._best = self._last = math.inf  # the fastest of this period and of the last one (ms)
        self._n = 0

    def add(self, duration_ms: float) -> None:
        if duration_ms < self._best:
            self._best = duration_ms
        self._n += 1
        if self._n == PERIOD:
            self._last, self._best, self._n = self._best, math.inf, 0
        self.quick = min(self._best, self._last) < QUICK_MS


class Entry:
    """One counted invocation."""

    __slots__ = ("start", "live")

    def __init__(self, start: float) -> None:
        self.start = start
        self.live = True


class DispatchWindow:
    def __init__(self, width: int, fresh_s: float = FRESH_S) -> None:
        self.width = width
        self.fresh_s = fresh_s
        self.counted = 0
        self._entries: collections.deque[Entry] = collections.deque()  # by start; finished ones linger

    def enter(self, now: float) -> Entry | None:
        """A place for an invocation handed over at `now`, or None when the window is full."""
        if self.counted >= self.width:
            self.expire(now)
            if self.counted >= self.width:
                return None
        self.counted += 1
        entry = Entry(now)
        self._entries.append(entry)
        return entry

    def leave(self, entry: Entry) -> None:
        """The invocation finished (or gave up its place)."""
        if entry.live:
            entry.live = False
            self.counted -= 1
        entries = self._entries
        while entries and not entries[0].live:
            entries.popleft()

    def expire(self, now: float) -> None:
        """Invocations older than fresh_s stop counting."""
        entries = self._entries
        cutoff = now - self.fresh_s
        while entries and (not entries[0].live or entries[0].start <= cutoff):
            entry = entries.popleft()
            if entry.live:
                entry.live = False
                self.counted -= 1

    def next_expiry(self) -> float | None:
        """When the oldest counted invocation stops counting (None: none counts)."""
        for entry in self._entries:
            if entry.live:
                return entry.start + self.fresh_s
        return None
