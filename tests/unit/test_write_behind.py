"""The write-behind buffers of the log and metering stores: exact rows, multi-statement batches, a
writer thread beside appenders, retention along the (group, time) index."""

from __future__ import annotations

import threading

from lamina.logsink import FileLogSink
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


def test_log_files_are_written_by_the_flusher_only(tmp_path):
    files = FileLogSink(tmp_path / "logs", max_open=2)
    files.write("f", "2026/11/27/[$LATEST]a", "one\n")
    path = files.path("f", "2026/11/27/[$LATEST]a")
    assert not path.exists()  # write() does no I/O: the invoke path stays off the disk
    for i in range(5):  # more streams than open files: each is reopened and appended to
        for stream in ("2026/11/27/[$LATEST]a", "2026/11/27/[$LATEST]b", "2026/11/27/[1]c"):
            files.write("f", stream, f"{stream[-1]}{i}\n")
        files.flush()
    files.close()
    assert path.read_text() == "one\n" + "".join(f"a{i}\n" for i in range(5))
    assert files.path("f", "2026/11/27/[1]c").read_text() == "".join(f"c{i}\n" for i in range(5))


def test_log_files_keep_order_with_a_flusher_thread(tmp_path):
    files = FileLogSink(tmp_path / "logs")
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            files.flush()

    thread = threading.Thread(target=flusher)
    thread.start()
    for i in range(20_000):
        files.write("f", "s", f"{i}\n")
    stop.set()
    thread.join()
    files.close()
    assert files.path("f", "s").read_text() == "".join(f"{i}\n" for i in range(20_000))


def test_one_write_is_one_row_and_reads_back_line_by_line(tmp_path):
    store = LogStore(tmp_path / "l.db")
    store.append("/aws/lambda/f", "s", 1000, "START\nout 1\n\n  \nout 2\r\nEND\n")
    store.append("/aws/lambda/f", "s", 1001, "REPORT")
    store.append("/aws/lambda/f", "s", 1002, " \n\n")  # nothing but blank lines: no row
    store.flush(0)
    assert store._db.execute("SELECT COUNT(*) FROM log_chunks").fetchone()[0] == 2
    events = store.events("/aws/lambda/f", None, None, None, 0, 100)
    assert [e.message for e in events] == ["START", "out 1", "out 2", "END", "REPORT"]
    assert [e.id for e in events] == sorted(e.id for e in events) and len({e.id for e in events}) == 5
    # paging from inside a row goes on at its next line, both ways
    page = store.events("/aws/lambda/f", None, None, None, events[1].id, 2)
    assert [e.message for e in page] == ["out 2", "END"]
    back = store.events("/aws/lambda/f", None, None, None, events[3].id, 2, descending=True)
    assert [e.message for e in back] == ["out 2", "out 1"]
    assert [e.message for e in store.events("/aws/lambda/f", None, None, None, 0, 3, descending=True)] == [
        "REPORT", "END", "out 2"]
    assert [e.message for e in store.events("/aws/lambda/f", None, 1001, None, 0, 10)] == ["REPORT"]


def test_a_write_with_more_lines_than_a_row_holds_is_cut(tmp_path, monkeypatch):
    from lamina.store import logs as logs_mod

    monkeypatch.setattr(logs_mod, "LINES_PER_ROW", 8)
    store = LogStore(tmp_path / "l.db")
    store.append("/aws/lambda/f", "s", 1, "\n".join(f"l{i}" for i in range(20)))
    store.flush(0)
    assert store._db.execute("SELECT COUNT(*) FROM log_chunks").fetchone()[0] == 3
    assert _messages(store, "/aws/lambda/f") == [f"l{i}" for i in range(20)]
    assert [e.message for e in store.events("/aws/lambda/f", None, None, None, 0, 9)] == [f"l{i}" for i in range(9)]


def test_a_data_directory_with_one_line_rows_is_migrated(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "l.db")
    db.executescript("""
        CREATE TABLE log_events (id INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL, stream TEXT NOT NULL,
                                 ts INTEGER NOT NULL, ingested INTEGER NOT NULL, message TEXT NOT NULL);
        INSERT INTO log_events (grp, stream, ts, ingested, message) VALUES
            ('/aws/lambda/f', 's', 1, 2, 'old one'), ('/aws/lambda/f', 's', 3, 4, 'old two');
    """)
    db.close()
    store = LogStore(tmp_path / "l.db")
    store.append("/aws/lambda/f", "s", 5, "new")
    store.flush(0)
    assert _messages(store, "/aws/lambda/f") == ["old one", "old two", "new"]
    assert store._db.execute("SELECT name FROM sqlite_master WHERE name = 'log_events'").fetchone() is None
    store.close()
    assert _messages(LogStore(tmp_path / "l.db"), "/aws/lambda/f") == ["old one", "old two", "new"]


def test_statement_sizes_are_powers_of_two_up_to_the_most():
    assert store_db.statement_sizes(13, 4096) == [(0, 8), (8, 4), (12, 1)]
    assert store_db.statement_sizes(10000, 4096) == [(0, 4096), (4096, 4096), (8192, 1024), (9216, 512),
                                                      (9728, 256), (9984, 16)]
    assert store_db.statement_sizes(0, 8) == []
    for n in range(1, 300):
        sizes = store_db.statement_sizes(n, 64)
        assert sum(size for _, size in sizes) == n and all(size <= 64 for _, size in sizes)
        assert [at for at, _ in sizes] == [sum(s for _, s in sizes[:i]) for i in range(len(sizes))]


def test_batches_of_every_size_share_a_few_statements(tmp_path):
    """One SQL statement per batch size kept ~1 MB prepared statements for the last 128 sizes in the
    connection's cache: the server's memory grew by hundreds of MB under load."""
    store = LogStore(tmp_path / "l.db")
    written = 0
    for n in range(1, 400):
        for i in range(n):
            store.append("/aws/lambda/f", "s", written + i, f"line {written + i}")
        store.flush(0)
        written += n
    assert len(store._writes._sql) <= store._writes._chunk.bit_length()
    assert len(_messages(store, "/aws/lambda/f")) == written
