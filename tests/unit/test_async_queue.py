"""The durable async queue (store/queue.py) on a temporary SQLite file: lease, ack, expiry, ordering."""

from __future__ import annotations

import sqlite3

import pytest

from lamina.store.queue import NewEvent, QueueStatistics, SqliteQueue

T0 = 1_700_000_000.0


def new(n: int, at: float = T0, **kw) -> NewEvent:
    return NewEvent(request_id=f"r{n}", function=kw.pop("function", "f"), qualifier="$LATEST",
                    invoked_arn="arn:aws:lambda:us-east-1:000000000000:function:f", trace_id="t",
                    payload=f'{{"n": {n}}}'.encode(), enqueued_at=at, **kw)


@pytest.fixture
def queue(tmp_path):
    q = SqliteQueue(tmp_path / "lamina.db")
    yield q
    q.close()


def test_lease_takes_available_events_oldest_first(queue):
    """Events come out in the order they became available, then by id."""
    queue.enqueue([new(1, T0 + 2), new(2, T0), new(3, T0 + 1)])
    got = queue.lease(10, T0 + 5, T0 + 15)
    assert [e.request_id for e in got] == ["r2", "r3", "r1"]
    assert all(e.deliveries == 1 and e.attempts == 0 for e in got)


def test_lease_respects_limit_and_available_time(queue):
    """Only available events are leased, at most `limit` of them."""
    queue.enqueue([new(1), new(2), new(3, available_at=T0 + 60)])
    assert [e.request_id for e in queue.lease(1, T0, T0 + 100)] == ["r1"]
    assert [e.request_id for e in queue.lease(5, T0, T0 + 100)] == ["r2"]
    assert queue.lease(5, T0, T0 + 100) == []
    assert [e.request_id for e in queue.lease(5, T0 + 60, T0 + 70)] == ["r3"]


def test_leased_events_are_invisible_until_the_lease_expires(queue):
    """A crashed holder's lease expires and the event is delivered again, with a new delivery number."""
    queue.enqueue([new(1)])
    first = queue.lease(1, T0, T0 + 10)[0]
    assert queue.lease(1, T0 + 9.9, T0 + 20) == []
    again = queue.lease(1, T0 + 10, T0 + 20)[0]
    assert (again.id, again.deliveries) == (first.id, 2)


def test_ack_removes_the_event_and_queues_follow_ups_atomically(queue):
    queue.enqueue([new(1)])
    event = queue.lease(1, T0, T0 + 10)[0]
    assert queue.ack(event, [new(2, T0 + 1, function="dest")])
    got = queue.lease(10, T0 + 100, T0 + 110)
    assert [(e.request_id, e.function) for e in got] == [("r2", "dest")]


def test_a_stale_lease_cannot_end_the_current_one(queue):
    """After expiry and re-lease, the first holder's ack changes nothing (and queues no follow-up)."""
    queue.enqueue([new(1)])
    stale = queue.lease(1, T0, T0 + 10)[0]
    current = queue.lease(1, T0 + 11, T0 + 21)[0]
    assert not queue.ack(stale, [new(9)])
    assert not queue.retry_later(stale, T0, attempts=1, throttles=0)
    assert queue.renew([stale], T0 + 99) == 0
    assert queue.statistics(T0 + 12) == QueueStatistics(ready=0, delayed=0, leased=1, dead=0)
    assert queue.ack(current)
    assert queue.statistics(T0 + 12) == QueueStatistics(0, 0, 0, 0)


def test_retry_later_keeps_counts_and_last_response(queue):
    queue.enqueue([new(1)])
    event = queue.lease(1, T0, T0 + 10)[0]
    assert queue.retry_later(event, T0 + 60, attempts=1, throttles=2, last_response=b'{"errorType":"E"}',
                             last_error="Unhandled", last_version="3")
    assert queue.statistics(T0 + 1) == QueueStatistics(ready=0, delayed=1, leased=0, dead=0)
    assert queue.lease(1, T0 + 59, T0 + 70) == []
    again = queue.lease(1, T0 + 60, T0 + 70)[0]
    assert (again.attempts, again.throttles, again.deliveries) == (1, 2, 2)
    assert (again.last_response, again.last_error, again.last_version) == (b'{"errorType":"E"}', "Unhandled", "3")


def test_renew_extends_only_current_leases(queue):
    queue.enqueue([new(1)])
    event = queue.lease(1, T0, T0 + 10)[0]
    assert queue.renew([event], T0 + 30) == 1
    assert queue.lease(1, T0 + 20, T0 + 40) == []
    assert len(queue.lease(1, T0 + 30, T0 + 40)) == 1


def test_release_hands_leases_back_at_once_but_not_retries(queue):
    """Shutdown: leased events are available again now; one already scheduled for a retry keeps its time."""
    queue.enqueue([new(1), new(2)])
    one, two = queue.lease(2, T0, T0 + 10)
    queue.retry_later(two, T0 + 60, attempts=1, throttles=0)
    assert queue.release([one, two], T0 + 1) == 1
    assert [e.request_id for e in queue.lease(5, T0 + 1, T0 + 11)] == ["r1"]


def test_dead_moves_the_event_and_queues_follow_ups(queue):
    queue.enqueue([new(1)])
    event = queue.lease(1, T0, T0 + 10)[0]
    assert queue.dead(event, "RetriesExhausted", T0 + 1, [new(2, function="dlq")])
    assert queue.statistics(T0 + 1) == QueueStatistics(ready=1, delayed=0, leased=0, dead=1)
    assert queue.purge_dead(T0 + 2) == 1
    assert queue.statistics(T0 + 1).dead == 0


def test_events_survive_reopening(tmp_path):
    """What enqueue returned for is on disk: a new connection (a restarted server) sees it."""
    first = SqliteQueue(tmp_path / "lamina.db")
    first.enqueue([new(1), new(2)])
    first.lease(1, T0, T0 + 10)  # in flight when the "crash" happens
    first.close()
    second = SqliteQueue(tmp_path / "lamina.db")
    assert [e.request_id for e in second.lease(5, T0, T0 + 100)] == ["r2"]
    assert [e.request_id for e in second.lease(5, T0 + 10, T0 + 20)] == ["r1"]
    second.close()


def test_batch_commits_once_and_a_failing_call_changes_nothing(queue):
    """Inside batch(), each call is atomic on its own (a savepoint); the others still commit."""
    queue.enqueue([new(1)])
    event = queue.lease(1, T0, T0 + 10)[0]
    bad = NewEvent(request_id=None, function="f", qualifier="$LATEST", invoked_arn="a", trace_id="t",  # type: ignore[arg-type]
                   payload=b"{}", enqueued_at=T0)
    with queue.batch():
        with pytest.raises(sqlite3.IntegrityError):
            queue.ack(event, [new(2), bad])  # NOT NULL fails after the delete: the whole ack is undone
        queue.enqueue([new(3)])
    got = queue.lease(5, T0 + 20, T0 + 30)
    assert sorted(e.request_id for e in got) == ["r1", "r3"]


def test_next_available(queue):
    assert queue.next_available() is None
    queue.enqueue([new(1, available_at=T0 + 5), new(2, available_at=T0 + 3)])
    assert queue.next_available() == T0 + 3
