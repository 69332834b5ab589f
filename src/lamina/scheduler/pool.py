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


def expired(idle_since: list[float], now: float, keepalive_s: float) -> list[int]:
    """Indexes of idle environments whose keep-alive has run out."""
    return [i for i, since in enumerate(idle_since) if now - since >= keepalive_s]
