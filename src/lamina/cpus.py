"""The event loop's thread on one CPU of its own choosing (LAMINA_LOOP_CPU), nothing else pinned.

One thread runs every request of the Lambda and Runtime APIs. Left free, Linux moves it to whichever
CPU woke it (a runtime answering, a client writing), and its caches go cold each time; pinned, it stays
hot and the runtimes spread over the other CPUs (throughput +10-16% with 64 clients on 2 cores).

Linux keeps affinity per thread and copies it into every thread and process a thread starts, so the pin
must not spread: threads the loop's thread starts call `release_thread()` first (the executors'
initializer), and the loop's thread starts processes inside `unpinned()`. Environments forked by a
zygote inherit the zygote's, which its starter thread released. The pure choice is `choose()`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

_lock = threading.Lock()
#: (the process's CPUs before pinning, the loop thread's CPU, its ident), while pinned.
_pin: tuple[frozenset[int], int, int] | None = None


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


def pin_loop_thread(setting: str) -> int | None:
    """Pin the calling thread (the event loop's) as `setting` says; the CPU, or None."""
    global _pin
    allowed = frozenset(os.sched_getaffinity(0))
    cpu = choose(setting, allowed)
    if cpu is None:
        return None
    with _lock:
        _pin = (allowed, cpu, threading.get_ident())
    os.sched_setaffinity(0, {cpu})
    return cpu


def unpin_loop_thread() -> None:
    global _pin
    with _lock:
        pin, _pin = _pin, None
    if pin is not None and threading.get_ident() == pin[2]:
        os.sched_setaffinity(0, pin[0])


def release_thread() -> None:
    """Give the calling thread every CPU the process had (first thing in threads the loop's starts)."""
    pin = _pin
    if pin is not None and threading.get_ident() != pin[2]:
        os.sched_setaffinity(0, pin[0])


@contextlib.contextmanager
def unpinned() -> Iterator[None]:
    """Around starting a process: on the loop's thread, every CPU for the while (the child keeps them)."""
    pin = _pin
    if pin is None or threading.get_ident() != pin[2]:
        release_thread()
        yield
        return
    os.sched_setaffinity(0, pin[0])
    try:
        yield
    finally:
        os.sched_setaffinity(0, {pin[1]})
