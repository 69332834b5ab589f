"""Where the event loop's thread runs (LAMINA_LOOP_CPU, LAMINA_LOOP_NICE), and that neither spreads to
the threads and processes it starts."""

from __future__ import annotations

import os
import threading

import pytest

from lamina import cpus


def test_choose():
    two = frozenset({0, 1})
    assert cpus.choose("auto", two) == 1 and cpus.choose("", two) == 1
    assert cpus.choose("auto", frozenset({3})) is None  # one CPU: nothing to gain
    assert cpus.choose("off", two) is None and cpus.choose(" OFF ", two) is None
    assert cpus.choose("0", two) == 0
    for bad in ("2", "-1", "one"):
        with pytest.raises(ValueError, match="LAMINA_LOOP_CPU must be auto, off or one of"):
            cpus.choose(bad, two)
    assert cpus.check_nice(-5) == -5 and cpus.check_nice(0) == 0
    for bad in (1, -21):
        with pytest.raises(ValueError, match="LAMINA_LOOP_NICE must be from -20 to 0"):
            cpus.check_nice(bad)


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or os.geteuid() != 0,
                    reason="needs two CPUs to pin one, and root to raise a priority")
def test_the_placement_stays_on_the_loop_thread():
    allowed, nice = set(os.sched_getaffinity(0)), _nice()
    seen: dict[str, tuple[set[int], int]] = {}

    def released() -> None:
        seen["inherited"] = (set(os.sched_getaffinity(0)), _nice())
        cpus.release_thread()
        seen["released"] = (set(os.sched_getaffinity(0)), _nice())

    def run() -> None:  # the "loop thread": a thread of its own, so the test's thread keeps its nice
        cpu, loop_nice = cpus.place_loop_thread("auto", nice - 5)
        try:
            assert (cpu, loop_nice) == (max(allowed), nice - 5)
            assert os.sched_getaffinity(0) == {cpu} and _nice() == nice - 5
            with cpus.unpinned():
                seen["unpinned"] = (set(os.sched_getaffinity(0)), _nice())
            assert os.sched_getaffinity(0) == {cpu} and _nice() == nice - 5
            thread = threading.Thread(target=released)  # started by the loop thread: inherits
            thread.start()
            thread.join()
        finally:
            cpus.release_loop_thread()
        seen["after"] = (set(os.sched_getaffinity(0)), _nice())

    loop = threading.Thread(target=run)
    loop.start()
    loop.join()
    assert seen == {"inherited": ({max(allowed)}, nice - 5), "released": (allowed, nice),
                    "unpinned": (allowed, nice), "after": (allowed, nice)}


def test_a_refused_placement_is_skipped_not_raised(monkeypatch):
    def refuse(*args):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "setpriority", refuse)
    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    seen: list[object] = []

    def run() -> None:
        try:
            seen.append(cpus.place_loop_thread("auto", -5))
            with cpus.unpinned():
                seen.append("spawned")
            cpus.release_thread()
        finally:
            cpus.release_loop_thread()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [(None, None), "spawned"]
