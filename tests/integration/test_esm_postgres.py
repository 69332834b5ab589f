"""PostgreSQL row changes ("a new row in a database"): the logical-decoding source against a throwaway
cluster, and mappings end to end through `lamina serve` — rows in commit order, DynamoDB-shaped, and a
`kill -9` of lamina followed by a restart that resumes from the slot (nothing lost, at most the in-flight
batch again)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from lamina.clock import SystemClock
from lamina.esm.contracts import InvokeOutcome
from lamina.esm.sources.postgres import PostgresSource
from lamina.esm.stream import StreamPoller
from tests.conftest import make_zip
from tests.integration.conftest import start_server, stop_server
from tests.integration.moto_server import moto  # noqa: F401  (the fixture)
from tests.integration.postgres_cluster import postgres  # noqa: F401  (the fixture)
from tests.integration.recorder import RECORD_BATCH, Recorder, wait_until

ROLE = "arn:aws:iam::000000000000:role/x"
HANDLER = RECORD_BATCH + '''
def handler(event, context):
    record_batch(event)
    time.sleep(float(os.environ.get("SLEEP", "0")))
'''


def arn(table: str) -> str:
    return f"arn:lamina:postgres:us-east-1:000000000000:table/app/public.{table}"


def make_table(cluster) -> str:
    table = f"t_{uuid.uuid4().hex[:8]}"
    with cluster.connect() as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text, price numeric, tags jsonb)")
    return table


def slot_exists(cluster, name: str) -> bool:
    with cluster.connect() as conn:
        return bool(conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (name,)).fetchall())


class Harness:
    """Shard pollers over the real source with in-memory checkpoints; the function notes what it sees."""

    def __init__(self, cluster, table: str, uuid_: str, batch_size: int = 5) -> None:
        self.cluster, self.table, self.uuid, self.batch_size = cluster, table, uuid_, batch_size
        self.seen: list[tuple[str, int]] = []
        self.checkpoints: dict[str, str] = {}

    async def invoke(self, event: bytes) -> InvokeOutcome:
        for record in json.loads(event)["Records"]:
            self.seen.append((record["eventName"], int(record["dynamodb"]["Keys"]["id"]["N"])))
        return InvokeOutcome(200, None, b"null")

    async def save(self, shard: str, value: str) -> None:
        self.checkpoints[shard] = value

    async def load(self, shard: str) -> str | None:
        return self.checkpoints.get(shard)

    def poller(self) -> StreamPoller:
        source = PostgresSource(arn(self.table), conninfo=self.cluster.dsn())
        return StreamPoller(
            uuid=self.uuid, source=source, invoke=self.invoke, send_failure=None, load_checkpoint=self.load,
            save_checkpoint=self.save, record_filter=None, batch_size=self.batch_size, batching_window_s=0,
            starting_position="TRIM_HORIZON", starting_timestamp=None, parallelization_factor=1,
            bisect_on_error=False, maximum_retry_attempts=-1, maximum_record_age_s=-1,
            report_batch_item_failures=False, function_arn="arn:aws:lambda:us-east-1:0:function:f",
            clock=SystemClock())

    async def run_until(self, done, timeout: float = 30.0) -> None:
        """Run a fresh poller until `done()`, then stop it as the manager does (cancel, then aclose)."""
        p = self.poller()
        task = asyncio.create_task(p.run())
        try:
            deadline = time.monotonic() + timeout
            while not done():
                if time.monotonic() > deadline:
                    raise AssertionError(f"not reached; {len(self.seen)} seen, last {self.seen[-3:]}")
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await p.aclose()

    def pending_changes(self, slot: str) -> int:
        with self.cluster.connect() as conn:
            return conn.execute("SELECT count(*) FROM pg_logical_slot_peek_changes(%s, NULL, NULL, "
                                "'format-version', '2', 'include-transaction', '0', 'add-tables', %s)",
                                (slot, f"public.{self.table}")).fetchone()[0]

    def drop(self, slot: str) -> None:
        with self.cluster.connect() as conn:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


def test_poller_follows_a_table_and_resumes_from_the_slot(postgres):  # noqa: F811
    """The shard poller over the real source: rows in commit order; a new poller on the same slot resumes
    after the last checkpoint, with nothing lost and nothing repeated."""
    h = Harness(postgres, make_table(postgres), "pg-test-1")
    table = h.table

    async def main() -> None:
        await h.run_until(lambda: slot_exists(postgres, "lamina_pgtest1"))
        with postgres.connect() as conn:
            for i in range(12):
                conn.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (i, f"n{i}"))
            conn.execute(f"UPDATE {table} SET name = 'x' WHERE id = 3")
        await h.run_until(lambda: len(h.seen) >= 13)
        with postgres.connect() as conn:  # while nothing runs
            conn.execute(f"DELETE FROM {table} WHERE id < 2")
            with conn.transaction():
                conn.execute(f"INSERT INTO {table} (id) VALUES (100)")
                conn.execute(f"INSERT INTO {table} (id) VALUES (101)")
        await h.run_until(lambda: len(h.seen) >= 17)

    asyncio.run(main())
    assert h.seen == [("INSERT", i) for i in range(12)] + [("MODIFY", 3), ("REMOVE", 0), ("REMOVE", 1),
                                                              ("INSERT", 100), ("INSERT", 101)]
    assert h.pending_changes("lamina_pgtest1") == 0  # the slot was advanced past everything
    h.drop("lamina_pgtest1")


def test_large_transactions_and_a_backlog_flow_through(postgres):  # noqa: F811
    """A 5,000-row transaction and 3,000 rows in small ones (more than one peek holds) all arrive, in order,
    and the slot ends past them."""
    h = Harness(postgres, make_table(postgres), "pg-test-2", batch_size=500)
    table = h.table

    async def main() -> None:
        await h.run_until(lambda: slot_exists(postgres, "lamina_pgtest2"))
        with postgres.connect() as conn:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} (id) VALUES (%s)", [(i,) for i in range(5000)])
            for start in range(5000, 8000, 100):
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(f"INSERT INTO {table} (id) VALUES (%s)", [(i,) for i in range(start, start + 100)])
        await h.run_until(lambda: len(h.seen) >= 8000 and h.pending_changes("lamina_pgtest2") == 0)

    asyncio.run(main())
    assert h.seen == [("INSERT", i) for i in range(8000)]
    h.drop("lamina_pgtest2")


# -- end to end through `lamina serve` ---------------------------------------------------------------------

def make_function(lam, recorder: Recorder, sleep: float = 0) -> str:
    name = f"pg-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE, Timeout=30,
                        Code={"ZipFile": make_zip({"app.py": HANDLER})},
                        Environment={"Variables": {"CB": recorder.url, "SLEEP": str(sleep)}})
    return name


def ids(recorder: Recorder, fn: str) -> list[int]:
    return [int(r["dynamodb"]["Keys"]["id"]["N"]) for b in recorder.where(lambda b: b.get("key") == fn)
            for r in b["records"]]


def create_mapping(lam, postgres, table: str, fn: str, **extra) -> str:  # noqa: F811
    mapping = lam.create_event_source_mapping(EventSourceArn=arn(table), FunctionName=fn,
                                              StartingPosition="LATEST", **extra)
    slot = "lamina_" + mapping["UUID"].replace("-", "")
    assert wait_until(lambda: slot_exists(postgres, slot)), "the mapping never created its slot"
    return mapping["UUID"]


def test_new_rows_reach_the_function_in_commit_order(tmp_path, postgres, recorder):  # noqa: F811
    """Rows written after the mapping starts arrive as DynamoDB-shaped records, in commit order, fast."""
    server = start_server(tmp_path / "data", tmp_path / "server.log", postgres.env())
    try:
        lam = server.client()
        fn = make_function(lam, recorder)
        table = make_table(postgres)
        uuid_ = create_mapping(lam, postgres, table, fn, BatchSize=10)
        with postgres.connect() as conn:
            for i in range(30):
                conn.execute(f"INSERT INTO {table} (id, name, price, tags) VALUES (%s, %s, 9.50, %s)",
                             (i, f"row {i}", '{"colour": "red", "sizes": [1, 2]}'))
            conn.execute(f"UPDATE {table} SET price = 10 WHERE id = 5")
            conn.execute(f"DELETE FROM {table} WHERE id = 6")
        assert wait_until(lambda: len(ids(recorder, fn)) >= 32), ids(recorder, fn)
        records = [r for b in recorder.where(lambda b: b.get("key") == fn) for r in b["records"]]
        assert [(r["eventName"], int(r["dynamodb"]["Keys"]["id"]["N"])) for r in records] == \
            [("INSERT", i) for i in range(30)] + [("MODIFY", 5), ("REMOVE", 6)]
        first = records[0]
        assert first["eventSource"] == "lamina:postgres" and first["eventSourceARN"] == arn(table)
        assert first["dynamodb"]["NewImage"] == {
            "id": {"N": "0"}, "name": {"S": "row 0"}, "price": {"N": "9.50"},
            "tags": {"M": {"colour": {"S": "red"}, "sizes": {"L": [{"N": "1"}, {"N": "2"}]}}}}
        modify = records[30]["dynamodb"]
        assert modify["OldImage"]["price"] == {"N": "9.50"} and modify["NewImage"]["price"] == {"N": "10"}
        assert records[31]["dynamodb"]["OldImage"]["name"] == {"S": "row 6"}  # REPLICA IDENTITY FULL was set
        seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert lam.get_event_source_mapping(UUID=uuid_)["LastProcessingResult"] == "OK"
        lam.delete_event_source_mapping(UUID=uuid_)
        slot = "lamina_" + uuid_.replace("-", "")
        assert wait_until(lambda: not slot_exists(postgres, slot)), "a deleted mapping drops its slot"
        with pytest.raises(lam.exceptions.InvalidParameterValueException):
            lam.create_event_source_mapping(EventSourceArn="arn:lamina:postgres:us-east-1:000000000000:tabel/x",
                                            FunctionName=fn, StartingPosition="LATEST")
        # A table that does not exist: the mapping says so in LastProcessingResult and keeps trying.
        missing = lam.create_event_source_mapping(EventSourceArn=arn("no_such_table"), FunctionName=fn,
                                                  StartingPosition="LATEST")["UUID"]
        assert wait_until(lambda: lam.get_event_source_mapping(UUID=missing)["LastProcessingResult"].startswith(
            "PROBLEM:"), 15)
        lam.delete_event_source_mapping(UUID=missing)
    finally:
        assert stop_server(server) == 0, server.output()


def test_kill_9_and_restart_resumes_from_the_checkpoint(tmp_path, postgres, recorder):  # noqa: F811
    """SIGKILL mid-stream, restart on the same data dir: every row arrives, in order, and only the batch in
    flight at the kill may arrive twice."""
    rows, batch = 120, 10
    server = start_server(tmp_path / "data", tmp_path / "server.log", postgres.env())
    lam = server.client()
    fn = make_function(lam, recorder, sleep=0.05)
    table = make_table(postgres)
    create_mapping(lam, postgres, table, fn, BatchSize=batch)
    with postgres.connect() as conn:
        for start in range(0, rows, 7):
            with conn.transaction():
                for i in range(start, min(start + 7, rows)):
                    conn.execute(f"INSERT INTO {table} (id) VALUES (%s)", (i,))
    assert wait_until(lambda: len(ids(recorder, fn)) >= 30)
    server.process.kill()  # SIGKILL: no shutdown of any kind
    server.process.wait(timeout=10)
    time.sleep(0.5)
    before = ids(recorder, fn)
    assert len(before) < rows, "everything was delivered before the kill; the test proves nothing"
    server = start_server(tmp_path / "data", tmp_path / "server.log", postgres.env())
    try:
        assert wait_until(lambda: set(ids(recorder, fn)) >= set(range(rows)), 60), sorted(set(ids(recorder, fn)))
        time.sleep(0.3)
        got = ids(recorder, fn)
        repeated = len(got) - rows
        assert 0 <= repeated <= batch, got
        # In order on each side of the kill; the restart resumes at most one batch back.
        after = got[len(before):]
        assert before == list(range(len(before))) and after == list(range(after[0], rows))
        assert before[-1] - batch < after[0] <= before[-1] + 1
    finally:
        assert stop_server(server) == 0, server.output()


REPORTING = '''
import json, os, urllib.request

def handler(event, context):
    request = urllib.request.Request(os.environ["CB"], data=json.dumps(
        {"key": os.environ["AWS_LAMBDA_FUNCTION_NAME"], "records": event["Records"]}).encode())
    urllib.request.urlopen(request, timeout=10).read()
    return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in event["Records"]
                                  if r["dynamodb"]["NewImage"]["name"].get("S") == "bad"]}
'''


def test_partial_failures_end_in_the_on_failure_queue(tmp_path, postgres, recorder, moto):  # noqa: F811
    """ReportBatchItemFailures with SequenceNumber identifiers: the batch is retried from the failed row,
    then given up to the SQS on-failure destination (DDBStreamBatchInfo), and the table's later rows go on."""
    sqs = moto.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"pg-fail-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    server = start_server(tmp_path / "data", tmp_path / "server.log", {**postgres.env(), **moto.env()})
    try:
        lam = server.client()
        fn = f"pgr-{uuid.uuid4().hex[:8]}"
        lam.create_function(FunctionName=fn, Runtime="python3.11", Handler="app.handler", Role=ROLE, Timeout=30,
                            Code={"ZipFile": make_zip({"app.py": REPORTING})},
                            Environment={"Variables": {"CB": recorder.url}})
        table = make_table(postgres)
        create_mapping(lam, postgres, table, fn, BatchSize=4, MaximumRetryAttempts=1,
                       FunctionResponseTypes=["ReportBatchItemFailures"],
                       DestinationConfig={"OnFailure": {"Destination": queue_arn}})
        with postgres.connect() as conn, conn.transaction():
            for i, name in enumerate(["a", "b", "bad", "c", "d", "e"]):
                conn.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (i, name))
        assert wait_until(lambda: 5 in ids(recorder, fn)), ids(recorder, fn)
        batches = [[int(r["dynamodb"]["Keys"]["id"]["N"]) for r in b["records"]]
                   for b in recorder.where(lambda b: b.get("key") == fn)]
        assert batches == [[0, 1, 2, 3], [2, 3], [4, 5]]
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5).get("Messages", [])
        body = json.loads(messages[0]["Body"])
        records = [r for b in recorder.where(lambda b: b.get("key") == fn) for r in b["records"]]
        info = body["DDBStreamBatchInfo"]
        assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == \
            (records[2]["dynamodb"]["SequenceNumber"], records[3]["dynamodb"]["SequenceNumber"], 2)
        assert info["shardId"] == "shard-0000" and info["streamArn"] == arn(table)
        assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert body["requestContext"]["approximateInvokeCount"] == 2
    finally:
        assert stop_server(server) == 0, server.output()
