"""Zygotes per runtime (sandbox/zygote.py): requests go to the lanes in turn; a lane that is down is
started and the others serve meanwhile."""

from lamina.runtimes.registry import Runtime
from lamina.sandbox import zygote as zy


class FakeZygote:
    def __init__(self, name: str) -> None:
        self.name, self.forks, self.alive = name, 0, True

    def acquire(self) -> None:
        self.forks += 1

    def retire(self) -> None:
        self.alive = False


class InlineThread:
    """threading.Thread that runs its target at start(): what get() starts has happened when it returns."""

    def __init__(self, target, args=(), daemon=None) -> None:
        self._run = lambda: target(*args)

    def start(self) -> None:
        self._run()


def zygotes(tmp_path, lanes: int, monkeypatch):
    monkeypatch.setattr(zy.threading, "Thread", InlineThread)
    z = zy.Zygotes(tmp_path / "root", None, lanes=lanes)  # type: ignore[arg-type]
    started: list[tuple[str, int]] = []
    monkeypatch.setattr(z, "_start", lambda runtime, key: started.append(key))
    return z, started


def test_requests_take_the_lanes_in_turn_and_a_missing_lane_is_started(tmp_path, monkeypatch):
    runtime = Runtime("python3.11", "python")
    z, started = zygotes(tmp_path, 2, monkeypatch)
    assert z.get(runtime) is None  # none up yet: both lanes start, this one environment is exec'd
    assert sorted(started) == [("python3.11", 0), ("python3.11", 1)]
    z._starting.clear()
    a = z._zygotes[("python3.11", 0)] = FakeZygote("a")  # type: ignore[assignment]
    started.clear()
    assert [z.get(runtime) for _ in range(3)] == [a, a, a]  # lane 1 still starting: lane 0 serves
    z._starting.clear()
    assert started == [("python3.11", 1)]  # asked for again once it was no longer starting
    b = z._zygotes[("python3.11", 1)] = FakeZygote("b")  # type: ignore[assignment]
    assert [z.get(runtime).name for _ in range(4)] == ["b", "a", "b", "a"]
    b.forks = zy.MAX_FORKS  # spent: retired, started again, and the other lane serves
    started.clear()
    assert z.get(runtime) is a and z.get(runtime) is a
    assert not b.alive and started == [("python3.11", 1)]


def test_default_lanes_are_the_processs_cpus_up_to_a_few(monkeypatch):
    monkeypatch.setattr(zy.cpus, "process_cpus", lambda: frozenset(range(16)))
    assert zy.default_lanes() == zy.MAX_LANES
    monkeypatch.setattr(zy.cpus, "process_cpus", lambda: frozenset({3}))
    assert zy.default_lanes() == 1
