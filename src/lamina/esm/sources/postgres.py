"""A PostgreSQL table's inserts, updates and deletes as a stream source (logical decoding with wal2json).

EventSourceArn: `arn:lamina:postgres:<region>:<account>:table/<database>/<schema>.<table>` (the schema may be
left out: `public`). The connection comes from libpq's own settings in lamina's environment (PGHOST,
PGPORT, PGUSER, PGPASSWORD or ~/.pgpass, PGSERVICE, PGSSLMODE, ...); the database from the ARN. The server
needs `wal_level = logical`, a free replication slot and the wal2json plugin; the user needs the
REPLICATION attribute (or to be a superuser).

One logical replication slot per mapping (`lamina_<uuid without dashes>`; `lamina_<database>_<table>` when
no mapping names it) holds the durable position: after the poller stores a checkpoint, `acknowledge`
advances the slot to the end of the last finished transaction, so a restart resumes exactly there (at most
the in-flight batch is delivered again). The slot is created on the first read: TRIM_HORIZON then starts at
the slot's creation, LATEST at the current end of the WAL. Deleting the mapping does not drop the slot
(drop it with `SELECT pg_drop_replication_slot('lamina_…')`, or PostgreSQL keeps WAL for it).

On its first read the source sets `REPLICA IDENTITY FULL` on the table when it has the default identity,
so updates and deletes carry the whole old row in OldImage (without the table's ownership it goes on,
and OldImage holds the key columns only).

The slot is polled with `pg_logical_slot_peek_changes` every `idle_poll_s` (10 ms) while idle, but only
decoded when the WAL has moved since the last look (one cheap `pg_current_wal_flush_lsn()` otherwise).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from typing import Any

from lamina.clock import Clock, SystemClock
from lamina.errors import InvalidParameterValue
from lamina.esm.contracts import ReadResult, StreamRecord
from lamina.esm.sources import pg_changes
from lamina.esm.sources.pg_changes import TXN_END, TableStream

log = logging.getLogger("lamina.esm.postgres")

SHARD = "shard-0000"
_RESOURCE = re.compile(r"^table/(?P<db>[^/]+)/(?:(?P<schema>[A-Za-z_][A-Za-z0-9_$]*)\.)?(?P<table>[A-Za-z_][A-Za-z0-9_$]*)$")
#: Rows asked from one peek beyond the records wanted (each transaction adds a begin and a commit row).
PEEK_SLACK = 64
#: Records of one peek kept in memory (a peek returns whole transactions, however large).
MAX_HELD = 10**9
#: Rows asked from one peek at least (decoding starts at the slot's restart point each time: fewer, bigger peeks).
PEEK_ROWS = 2000
#: Under load the slot is advanced at most this often (see `_advance`).
ADVANCE_EVERY_S = 0.25
#: Closing waits this long for the last advance (a connection cut mid-query may not answer).
FINAL_ADVANCE_S = 2.0


def parse_arn(arn: str) -> tuple[str, str, str, str]:
    """-> (region, database, schema, table); InvalidParameterValue when the ARN is not one of ours."""
    parts = arn.split(":", 5)
    match = _RESOURCE.match(parts[5]) if len(parts) == 6 else None
    if match is None or parts[:3] != ["arn", "lamina", "postgres"]:
        raise InvalidParameterValue(
            f"Unrecognized event source: {arn} (want arn:lamina:postgres:<region>:<account>:table/<db>/<schema>.<table>)")
    return parts[3], match["db"], match["schema"] or "public", match["table"]


def slot_name(database: str, schema: str, table: str, mapping_uuid: str | None) -> str:
    if mapping_uuid:
        return "lamina_" + re.sub(r"[^a-z0-9]", "", mapping_uuid.lower())
    name = re.sub(r"[^a-z0-9_]", "_", f"lamina_{database}_{schema}_{table}".lower())
    if len(name) > 63:
        name = name[:54] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


class PostgresSource:
    batch_info_key = "DDBStreamBatchInfo"
    idle_poll_s = 0.01
    discover_s = 60.0

    def __init__(self, arn: str, *, mapping_uuid: str | None = None, conninfo: str = "",
                 clock: Clock | None = None) -> None:
        self.arn = arn
        region, self.database, self.schema, self.table = parse_arn(arn)
        self.region = region
        self._conninfo = conninfo
        self._slot = slot_name(self.database, self.schema, self.table, mapping_uuid)
        self._conn: Any = None
        self._confirmed = 0  # the slot's confirmed position as far as this source knows
        self._seen_wal: int | None = None  # the WAL end when the last peek read everything there was
        self._sizes: dict[int, int] = {}  # commit LSN -> changes of this table in that transaction
        self._prepared = False
        self._clock = clock or SystemClock()
        self._advance_to = 0  # the slot may move here (the end of the last acknowledged transaction)
        self._advanced_at = float("-inf")
        self._held: list[StreamRecord] = []  # records decoded by the last peek, not handed out yet
        self._held_after: str | None = None  # ... handed out when the next read continues after this one
        self._held_position: str | None = None  # the position after the last peek's records

    @property
    def slot(self) -> str:
        return self._slot

    def bind_mapping(self, uuid: str) -> None:
        """Name the slot after the mapping (called by the poller before any read)."""
        if not self._prepared:
            self._slot = slot_name(self.database, self.schema, self.table, uuid)

    @property
    def _stream(self) -> TableStream:
        return TableStream(self.arn, self.region, self._slot)

    async def shards(self) -> list[str]:
        return [SHARD]

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            import psycopg
            self._conn = await psycopg.AsyncConnection.connect(self._conninfo, dbname=self.database, autocommit=True)
            self._prepared = False
        return self._conn

    async def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement; a broken connection is closed so the next call connects again."""
        import psycopg
        conn = await self._connection()
        try:
            cur = await conn.execute(sql, params)
            return list(await cur.fetchall()) if cur.description else []
        except psycopg.OperationalError:
            await conn.close()
            self._conn = None
            raise

    async def _prepare(self, starting_position: str) -> str | None:
        """Check the table, create the slot if missing; LATEST on a new slot -> the position it starts at."""
        qualified = f'"{self.schema}"."{self.table}"'
        found = await self._run("SELECT c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
                                (self.schema, self.table))
        if not found:
            raise InvalidParameterValue(f"Table {self.schema}.{self.table} does not exist in database {self.database}.")
        if found[0][0] == "d":
            await self._full_identity(qualified)
        slots = await self._run("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                                (self._slot,))
        start: str | None = None
        if slots:
            self._confirmed = pg_changes.lsn_to_int(slots[0][0]) if slots[0][0] else 0
        else:
            created = await self._run("SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'wal2json')",
                                      (self._slot,))
            self._confirmed = pg_changes.lsn_to_int(created[0][0])
            log.info("esm_postgres_slot_created slot=%s table=%s.%s", self._slot, self.schema, self.table)
            if starting_position == "LATEST":
                start = pg_changes.sequence(self._confirmed, TXN_END)
        self._prepared = True
        return start

    async def _full_identity(self, qualified: str) -> None:
        import psycopg
        try:
            await self._run(f"ALTER TABLE {qualified} REPLICA IDENTITY FULL")
        except psycopg.errors.InsufficientPrivilege:
            log.warning("esm_postgres_identity_default table=%s (OldImage will hold the key columns only)", qualified)

    async def read(self, shard: str, *, after: str | None, starting_position: str,
                   starting_timestamp: float | None, limit: int) -> ReadResult:
        if not self._prepared:
            start = await self._prepare(starting_position)
            if start is not None and after is None:
                return ReadResult((), start)
        if self._held and after == self._held_after:
            return self._hand_out(after, limit)
        self._held = []
        wal = pg_changes.lsn_to_int((await self._run("SELECT pg_current_wal_flush_lsn()::text"))[0][0])
        if wal == self._seen_wal:
            await self._advance()  # idle: catch the slot up now
            return ReadResult((), None)
        await self._advance()  # a peek decodes from the slot: start it at the last acknowledgement
        want = max(limit, PEEK_ROWS) + PEEK_SLACK
        rows = await self._run(
            "SELECT lsn::text, data FROM pg_logical_slot_peek_changes(%s, NULL, %s, 'format-version', '2', "
            "'include-lsn', '1', 'include-timestamp', '1', 'include-pk', '1', 'include-transaction', '1', "
            "'include-type-oids', '1', 'add-tables', %s)",
            (self._slot, want, f"{_escape(self.schema)}.{_escape(self.table)}"))
        txns, cut_short = pg_changes.transactions(rows)
        for txn in txns:
            self._sizes[txn.commit_lsn] = len(txn.changes)
        not_before = starting_timestamp if after is None and starting_position == "AT_TIMESTAMP" else None
        records, position, _ = self._stream.records(txns, after=after, limit=MAX_HELD, not_before=not_before)
        if not cut_short and len(rows) < want:
            self._seen_wal = wal  # everything up to `wal` has been read
        # A peek returns whole transactions, so it may bring more than `limit` records: the rest is held
        # and handed out by the next reads instead of being decoded again.
        self._held, self._held_position = records, position
        return self._hand_out(after, limit)

    def _hand_out(self, after: str | None, limit: int) -> ReadResult:
        out, self._held = self._held[:limit], self._held[limit:]
        if self._held:
            self._held_after = out[-1].sequence
            return ReadResult(out, out[-1].sequence)
        position = self._held_position
        return ReadResult(out, position if position != after else None)

    async def acknowledge(self, shard: str, sequence: str) -> None:
        """Advance the slot to the end of the last transaction finished by this checkpoint."""
        lsn, index = pg_changes.parse_sequence(sequence)
        if index >= TXN_END or index >= self._sizes.get(lsn, TXN_END):
            target = lsn
        else:
            earlier = [end for end in self._sizes if end < lsn]
            if not earlier:
                return
            target = max(earlier)
        for end in [e for e in self._sizes if e <= target]:
            del self._sizes[end]
        self._advance_to = max(self._advance_to, target)
        if self._clock.monotonic() - self._advanced_at >= ADVANCE_EVERY_S:
            await self._advance()

    async def _advance(self) -> None:
        """Move the slot to the last acknowledged transaction end (if it is not there yet).

        Advancing decodes WAL from the slot's restart point, so under load it runs at most every
        ADVANCE_EVERY_S (and whenever the source is idle). Nothing depends on it for correctness: the
        poller's stored checkpoint is passed back as `after`, and records up to it are skipped."""
        if self._advance_to <= self._confirmed:
            return
        target = self._advance_to
        await self._run("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                        (self._slot, pg_changes.int_to_lsn(target)))
        self._confirmed = target
        self._advanced_at = self._clock.monotonic()

    async def drop_slot(self) -> None:
        """Drop the mapping's replication slot (when the mapping is deleted for good)."""
        await self._run("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                        (self._slot,))

    async def aclose(self) -> None:
        """Advance the slot to the last acknowledgement (best effort: the checkpoint is stored anyway) and
        close the connection."""
        import psycopg
        if self._conn is not None:
            try:
                await asyncio.wait_for(self._advance(), FINAL_ADVANCE_S)
            except (psycopg.Error, TimeoutError) as exc:
                log.warning("esm_postgres_final_advance_failed slot=%s error=%r", self._slot, exc)
            await self._conn.close()
            self._conn = None


def _escape(name: str) -> str:
    """wal2json's add-tables escapes '.', ',' and '*' and spaces with a backslash."""
    return re.sub(r"([.,* \\])", r"\\\1", name)
