"""Pure warm-pool decisions: how many environments to start for the invocations that wait.

An invocation waits for an environment of its function version. Environments that will soon be
free count against the need: those still initialising and those that answered and are about to ask
for the next event (a few microseconds away). Only the rest is started, within the room the
concurrency limit leaves.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class PoolCounts:
    idle: int
    starting: int
    finishing: int
    waiting: int


def to_spawn(counts: PoolCounts, room: int) -> int:
    """Number of new environments to start now."""
    need = counts.waiting - counts.idle - counts.starting - counts.finishing
    return max(0, min(need, room))


def fills_room(waiting: int, environments: int, room: int) -> bool:
    """Whether `to_spawn` is `room` whatever the pool's counts: idle, starting and finishing environments
    are all among its `environments`, so the need is at least `waiting - environments`. In a burst it
    is, and the pool need not be counted (a pass over all its environments per started one)."""
    return waiting - environments >= room


def expired(idle_since: list[float], now: float, keepalive_s: float) -> list[int]:
    """Indexes of idle environments whose keep-alive has run out."""
    return [i for i, since in enumerate(idle_since) if now - since >= keepalive_s]
