"""The event loop's thread: pinned to one CPU (LAMINA_LOOP_CPU) and ahead of functions for the CPU
(LAMINA_LOOP_NICE); nothing else is.

One thread runs every request of the Lambda and Runtime APIs. Left free, Linux moves it to whichever
CPU woke it (a runtime answering, a client writing), and its caches go cold each time; pinned, it stays
hot and the runtimes spread over the other CPUs. And each answer it writes wakes a runtime that, at the
same priority, often takes the CPU from it at once, mid-way through a batch of ready requests; at a
higher priority (nice -5, three times the weight) the loop finishes its batch first. Lambda's own
front end does not share CPUs with functions at all. Measured with 64 clients on 2 cores: +10-16% from
the pin, a further +10-20% from the priority (docs/benchmarks.md).

Linux keeps affinity and nice per thread and copies them into every thread and process a thread
starts, so neither may spread: threads the loop's thread starts call `release_thread()` first (the
executors' initializer), and the loop's thread starts processes inside `unpinned()`. Environments
forked by a zygote inherit the zygote's, which its starter thread released. The pure choice is
`choose()`.

The loop's CPU is also fenced off from functions while the loop is busy (LAMINA_RESERVE_LOOP_CPU,
`fence_loop_cpu`): the runtimes a busy loop wakes no longer queue on its CPU — +4% and +15% invocations
per second at 64 clients on 2 cores in two bench/ab_bench.py runs (docs/benchmarks.md) — and a quiet
loop gives it back to CPU-heavy functions. The decision, with hysteresis, is `should_fence()`; the fence
itself is one cpuset over every environment (sandbox/cpufence.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("lamina.cpus")


@dataclasses.dataclass(frozen=True)
class _Pin:
    allowed: frozenset[int]  # the process's CPUs before
    nice: int  # the process's nice before
    cpu: int | None  # the loop thread's CPU, if pinned
    loop_nice: int | None  # the loop thread's nice, if raised
    ident: int  # the loop thread


_pin: _Pin | None = None


def choose(setting: str, allowed: frozenset[int]) -> int | None:
    """The CPU the loop's thread goes on: `auto` takes the highest allowed CPU when there are two or more
    (interrupts favour CPU 0), `off` none, a number that CPU; ValueError for one not allowed."""
    setting = setting.strip().lower()
    if setting in ("", "auto"):
        return max(allowed) if len(allowed) >= 2 else None
    if setting == "off":
        return None
    if not setting.isdigit() or int(setting) not in allowed:
        raise ValueError(f"LAMINA_LOOP_CPU must be auto, off or one of this process's CPUs "
                         f"({', '.join(map(str, sorted(allowed)))}), not {setting!r}")
    return int(setting)


def check_nice(value: int) -> int:
    if not -20 <= value <= 0:
        raise ValueError(f"LAMINA_LOOP_NICE must be from -20 to 0 (0: as functions), not {value}")
    return value


def _apply(cpus: frozenset[int] | set[int], nice: int | None) -> None:
    """This thread's CPUs and nice; a refusal (a CPU taken away by a cpuset since, a capability dropped)
    costs only the placement, never the spawn or thread it surrounds."""
    try:
        os.sched_setaffinity(0, cpus)
        if nice is not None:
            os.setpriority(os.PRIO_PROCESS, 0, nice)  # Linux: this thread's
    except OSError as exc:
        log.debug("thread_placement_not_changed error=%s", exc)


def _restore(pin: _Pin) -> None:
    """The calling thread back to the process's CPUs and (if the loop's was raised) nice."""
    _apply(pin.allowed, pin.nice if pin.loop_nice is not None else None)


def place_loop_thread(cpu_setting: str, nice: int) -> tuple[int | None, int | None]:
    """Pin and prioritise the calling thread (the event loop's) as the settings say: (CPU, nice) applied,
    None for each left alone (a nice below the process's needs CAP_SYS_NICE: without it, logged)."""
    global _pin
    allowed = frozenset(os.sched_getaffinity(0))
    before = os.getpriority(os.PRIO_PROCESS, 0)
    cpu = choose(cpu_setting, allowed)
    loop_nice: int | None = check_nice(nice) if nice < before else None
    if loop_nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, loop_nice)
        except OSError as exc:  # EACCES without CAP_SYS_NICE
            log.info("loop_nice_not_set nice=%d error=%s", loop_nice, exc)
            loop_nice = None
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError as exc:
            log.info("loop_cpu_not_set cpu=%d error=%s", cpu, exc)
            cpu = None
    if cpu is not None or loop_nice is not None:
        _pin = _Pin(allowed, before, cpu, loop_nice, threading.get_ident())
    return cpu, loop_nice


def process_cpus() -> frozenset[int]:
    """The CPUs lamina's process may use (the loop's thread's own, once pinned, is one of them)."""
    pin = _pin
    return pin.allowed if pin is not None else frozenset(os.sched_getaffinity(0))


def release_loop_thread() -> None:
    global _pin
    pin, _pin = _pin, None
    if pin is not None and threading.get_ident() == pin.ident:
        _restore(pin)


def release_thread() -> None:
    """Give the calling thread every CPU and the nice the process had (first thing in threads the loop's
    thread starts)."""
    pin = _pin
    if pin is not None and threading.get_ident() != pin.ident:
        _restore(pin)


@contextlib.contextmanager
def unpinned() -> Iterator[None]:
    """Around starting a process: on the loop's thread, the process's CPUs and nice for the while (the
    child keeps them)."""
    pin = _pin
    if pin is None or threading.get_ident() != pin.ident:
        release_thread()
        yield
        return
    _restore(pin)
    try:
        yield
    finally:
        _apply({pin.cpu} if pin.cpu is not None else pin.allowed, pin.loop_nice)


#: Fence the loop's CPU from functions once the loop is busy this much of the time; give it back below
#: FENCE_OFF_BUSY (the gap keeps a loop near one threshold from flapping).
FENCE_ON_BUSY = 0.75
FENCE_OFF_BUSY = 0.5
FENCE_EVERY_S = 0.5


def should_fence(busy: float, fenced: bool) -> bool:
    """Whether functions should be kept off the loop's CPU, given the share of the last interval the
    loop's thread spent on the CPU and whether they are now."""
    return busy > FENCE_OFF_BUSY if fenced else busy >= FENCE_ON_BUSY


async def fence_loop_cpu(set_cpus: Callable[[frozenset[int]], None], allowed: frozenset[int], loop_cpu: int,
                         mode: str, *, every_s: float = FENCE_EVERY_S,
                         busy_clock: Callable[[], float] = time.thread_time,
                         clock: Callable[[], float] = time.monotonic) -> None:
    """Run on the loop: `mode` on keeps functions on `allowed` minus the loop's CPU for good; auto does so
    while the loop is busy (its thread's CPU time over each `every_s`). A refused write ends it, logged."""
    others = allowed - {loop_cpu}
    if not others:
        return
    fenced = False
    try:
        if mode == "on":
            set_cpus(others)
            return
        spent, at = busy_clock(), clock()
        while True:
            await asyncio.sleep(every_s)
            now_spent, now = busy_clock(), clock()
            busy = (now_spent - spent) / max(now - at, 1e-6)
            spent, at = now_spent, now
            if should_fence(busy, fenced) != fenced:
                fenced = not fenced
                set_cpus(others if fenced else allowed)
                log.info("loop_cpu_fenced=%s busy=%.2f functions_cpus=%s", fenced, busy,
                         sorted(others if fenced else allowed))
    except OSError as exc:
        log.warning("loop_cpu_fence_failed error=%s", exc)
    finally:
        if fenced:
            with contextlib.suppress(OSError):
                set_cpus(allowed)
