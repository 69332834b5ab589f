"""The write-behind buffers of the log and metering stores: exact rows, multi-statement batches, a
writer thread beside appenders, retention along the (group, time) index."""

from __future__ import annotations

import threading

from lamina.store import db as store_db
from lamina.store.logs import LogStore
from lamina.store.metering import MeteringStore, Record

ODD_LINES = ["plain", "nul\x00inside", "emoji \U0001f600 and \u00e9", 'quote " and \\ backslash', "tab\there",
             "x" * 100_000]


def _messages(store: LogStore, group: str) -> list[str]:
    return [e.message for e in store.events(group, None, None, None, 0, 1_000_000)]


def test_log_lines_are_stored_exactly_with_their_ingestion_time(tmp_path):
    store = LogStore(tmp_path / "l.db")
    for line in ODD_LINES:
        store.append("/aws/lambda/f", "s", 1000, line)
    store.flush(2000)
    assert _messages(store, "/aws/lambda/f") == ODD_LINES
    events = store.events("/aws/lambda/f", None, None, None, 0, 1)
    assert (events[0].timestamp_ms, events[0].ingestion_ms) == (1000, 2000)


def test_a_batch_larger_than_one_statement_is_split(tmp_path):
    store = LogStore(tmp_path / "l.db")
    store._writes._chunk = 7  # several statements, and a short last one
    for i in range(100):
        store.append("/aws/lambda/f", "s", i, f"line {i}")
    store.flush(0)
    assert _messages(store, "/aws/lambda/f") == [f"line {i}" for i in range(100)]
    assert store_db.MAX_VARIABLES >= 999


def test_a_writer_thread_loses_nothing_appended_meanwhile(tmp_path):
    store = LogStore(tmp_path / "l.db")
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            store.flush(0)

    thread = threading.Thread(target=writer)
    thread.start()
    for i in range(20_000):
        store.append("/aws/lambda/f", "s", i, f"line {i}")
    stop.set()
    thread.join()
    store.flush(0)
    assert _messages(store, "/aws/lambda/f") == [f"line {i}" for i in range(20_000)]


def test_metering_records_round_trip(tmp_path):
    store = MeteringStore(tmp_path / "m.db")
    store.record(Record(ts_ms=5, function="f", version="$LATEST", request_id="r1", duration_ms=1.5, billed_ms=2,
                        memory_mb=1024, init_ms=None, cold=False, outcome="success"))
    store.record(Record(ts_ms=6, function="f", version="1", request_id="r2", duration_ms=3.25, billed_ms=4,
                        memory_mb=128, init_ms=12.5, cold=True, outcome="error"))
    assert store.between(0, 10) == [("f", "$LATEST", 5, 1.5, "success"), ("f", "1", 6, 3.25, "error")]
    usage = store.usage(0, "function")
    assert [(u.requests, u.errors, u.cold_starts, u.billed_ms) for u in usage] == [(2, 1, 1, 6)]


def test_retention_drops_old_events_of_every_group(tmp_path):
    store = LogStore(tmp_path / "l.db")
    for group in ("/aws/lambda/a", "/aws/lambda/b", "/aws/lambda/c"):
        store.append(group, "s", 100, "old")
        store.append(group, "s", 900, "new")
    store.flush(0)
    store.expire(500)
    for group in ("/aws/lambda/a", "/aws/lambda/b", "/aws/lambda/c"):
        assert _messages(store, group) == ["new"]
