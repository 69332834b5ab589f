"""Pure pool decisions."""

from lamina.scheduler.pool import PoolCounts, expired, fills_room, to_spawn


def test_spawns_one_per_waiting_invocation_without_a_coming_environment():
    assert to_spawn(PoolCounts(idle=0, starting=0, finishing=0, waiting=3), room=10) == 3


def test_environments_about_to_be_free_count_against_the_need():
    assert to_spawn(PoolCounts(idle=0, starting=1, finishing=1, waiting=3), room=10) == 1
    assert to_spawn(PoolCounts(idle=0, starting=2, finishing=2, waiting=3), room=10) == 0


def test_never_beyond_the_room_left():
    assert to_spawn(PoolCounts(idle=0, starting=0, finishing=0, waiting=50), room=4) == 4
    assert to_spawn(PoolCounts(idle=0, starting=0, finishing=0, waiting=5), room=0) == 0


def test_expired_picks_only_environments_past_keepalive():
    assert expired([0.0, 5.0, 9.0], now=10.0, keepalive_s=5.0) == [0, 1]
    assert expired([], now=10.0, keepalive_s=5.0) == []


def test_fills_room_only_when_any_counts_would_give_the_whole_room():
    # exhaustively: whenever fills_room says so, to_spawn gives `room` for every split of the environments
    for environments in range(6):
        for waiting in range(12):
            for room in range(1, 5):
                if not fills_room(waiting, environments, room):
                    continue
                for idle in range(environments + 1):
                    for starting in range(environments - idle + 1):
                        for finishing in range(environments - idle - starting + 1):
                            counts = PoolCounts(idle, starting, finishing, waiting)
                            assert to_spawn(counts, room) == room
    assert fills_room(600, 400, 1) and not fills_room(3, 2, 2)


def test_a_standby_being_adopted_counts_as_starting():
    """A standby taken for a pool is in it, still STANDBY, while its code is linked off the loop: it must
    count as coming, or a rebalance then (room opening anywhere) starts a second environment for the
    same waiting invocation — and the next invocation may land on that one instead of the warm one."""
    import collections

    from lamina.runtime_api.state import EnvState
    from lamina.scheduler.scheduler import Pool

    class Env:
        def __init__(self, state: EnvState) -> None:
            self.state = state

    adopted, initialising, answered = (Env(s) for s in (EnvState.STANDBY, EnvState.INIT, EnvState.RESPONDED))
    pool = Pool(("f", "$LATEST", "r"), envs={adopted, initialising, answered},
                waiters=collections.deque([object(), object(), object()]))
    counts = pool.counts()
    assert (counts.starting, counts.finishing, counts.waiting) == (2, 1, 3)
    assert to_spawn(counts, room=10) == 0
