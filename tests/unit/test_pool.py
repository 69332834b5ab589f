"""Pure pool decisions."""

from lamina.scheduler.pool import PoolCounts, expired, to_spawn


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
