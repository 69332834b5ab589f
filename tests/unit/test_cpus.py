"""Which CPU the event loop's thread takes (LAMINA_LOOP_CPU), and that its pin does not spread."""

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


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin one")
def test_the_pin_stays_on_the_loop_thread():
    allowed = set(os.sched_getaffinity(0))
    seen: dict[str, set[int]] = {}

    def released() -> None:
        cpus.release_thread()
        seen["released"] = set(os.sched_getaffinity(0))

    try:
        cpu = cpus.pin_loop_thread("auto")
        assert cpu == max(allowed) and os.sched_getaffinity(0) == {cpu}
        with cpus.unpinned():
            seen["unpinned"] = set(os.sched_getaffinity(0))
        assert os.sched_getaffinity(0) == {cpu}
        thread = threading.Thread(target=released)  # started by the pinned thread: inherits the pin
        thread.start()
        thread.join()
    finally:
        cpus.unpin_loop_thread()
    assert seen == {"unpinned": allowed, "released": allowed}
    assert os.sched_getaffinity(0) == allowed
