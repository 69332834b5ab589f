"""PostgreSQL row changes (wal2json format-version 2) as DynamoDB-Streams-shaped records. Pure: no I/O.

Rows come from `pg_logical_slot_peek_changes` as (lsn, data) in commit order: a "B" (begin), the table's
"I"/"U"/"D" changes, a "C" (commit) whose peek LSN is the end of the commit record. A record's sequence
number is that commit LSN (20 decimal digits) followed by the change's place in its transaction (8 digits),
so sequence numbers sort as strings in commit order and name a point the slot can be advanced to once a
transaction's last change is done. `TXN_END` in the last 8 digits means "after the whole transaction".

Values become DynamoDB attribute values: numbers {"N": text}, booleans {"BOOL"}, NULL {"NULL": true},
bytea {"B": base64}, json/jsonb {"M"/"L"/...} (walked), anything else {"S": PostgreSQL's text}.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from lamina.esm.contracts import StreamRecord

TXN_END = 99_999_999
EVENT_NAMES = {"I": "INSERT", "U": "MODIFY", "D": "REMOVE"}
NUMERIC_OIDS = {20, 21, 23, 26, 700, 701, 1700}  # int8 int2 int4 oid float4 float8 numeric
BOOL_OID, BYTEA_OID, JSON_OIDS = 16, 17, {114, 3802}
MAX_LSN = 2**64 - 1


def lsn_to_int(text: str) -> int:
    """'16/B374D848' -> the 64-bit position."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def int_to_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def sequence(commit_lsn: int, index: int) -> str:
    return f"{commit_lsn:020d}{index:08d}"


def parse_sequence(value: str) -> tuple[int, int]:
    """A sequence number (or a position after a transaction) -> (commit LSN, index)."""
    if len(value) != 28 or not value.isdigit():
        raise ValueError(f"not a PostgreSQL source sequence number: {value!r}")
    return int(value[:20]), int(value[20:])


def _json_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, decimal.Decimal):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [_json_value(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: _json_value(v) for k, v in value.items()}}
    return {"S": str(value)}


def _loads(text: str) -> Any:
    """JSON with numbers kept exactly as written (Decimal)."""
    return json.loads(text, parse_float=decimal.Decimal, parse_int=decimal.Decimal)


def attribute(column: dict[str, Any]) -> dict[str, Any]:
    """One wal2json column {"type", "typeoid", "value"} as a DynamoDB attribute value."""
    value = column.get("value")
    oid = column.get("typeoid")
    if value is None:
        return {"NULL": True}
    if oid == BOOL_OID or isinstance(value, bool):
        return {"BOOL": bool(value)}
    if oid in NUMERIC_OIDS or isinstance(value, decimal.Decimal):
        if isinstance(value, decimal.Decimal) and value.is_finite():
            return {"N": str(value)}
        return {"S": str(value)}  # NaN, Infinity: DynamoDB has no number for them
    if oid == BYTEA_OID and isinstance(value, str):
        try:
            return {"B": base64.b64encode(bytes.fromhex(value)).decode()}
        except ValueError:
            return {"S": value}
    if oid in JSON_OIDS and isinstance(value, str):
        try:
            return _json_value(_loads(value))
        except ValueError:
            return {"S": value}
    return {"S": value if isinstance(value, str) else str(value)}


def image(columns: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: attribute(c) for c in columns}


def commit_time(text: str | None) -> float:
    if not text:
        return 0.0
    return datetime.datetime.fromisoformat(text).timestamp()


@dataclasses.dataclass(frozen=True, slots=True)
class Transaction:
    commit_lsn: int  # end of the commit record: the slot can be advanced here once every change is done
    committed: float  # commit time, epoch seconds
    changes: tuple[dict[str, Any], ...]  # wal2json change objects ("I", "U", "D")


def transactions(rows: Sequence[tuple[str, str]]) -> tuple[list[Transaction], bool]:
    """Peek rows (lsn text, wal2json text) -> complete transactions in commit order, and whether the rows
    ended inside an unfinished one (a peek cut short; its changes are dropped and read again next time)."""
    out: list[Transaction] = []
    changes: list[dict[str, Any]] = []
    open_txn = False
    for lsn, data in rows:
        message = _loads(data)
        action = message.get("action")
        if action == "B":
            changes, open_txn = [], True
        elif action == "C":
            out.append(Transaction(lsn_to_int(lsn), commit_time(message.get("timestamp")), tuple(changes)))
            changes, open_txn = [], False
        elif action in EVENT_NAMES:
            changes.append(message)
    return out, open_txn


@dataclasses.dataclass(frozen=True, slots=True)
class TableStream:
    """How records of one table look: the source ARN, region and the slot (for event ids)."""
    arn: str
    region: str
    slot: str

    def event(self, change: dict[str, Any], seq: str, committed: float) -> dict[str, Any]:
        action = change["action"]
        columns = change.get("columns") or []
        identity = change.get("identity") or []
        row = columns or identity
        pk_names = [p["name"] for p in change.get("pk") or []]
        keys = image(c for c in row if c["name"] in pk_names) if pk_names else image(row)
        body: dict[str, Any] = {"ApproximateCreationDateTime": round(committed, 3), "Keys": keys}
        if action in ("I", "U"):
            body["NewImage"] = image(columns)
        if action in ("U", "D") and identity:
            body["OldImage"] = image(identity)
        body["SequenceNumber"] = seq
        body["SizeBytes"] = len(json.dumps([keys, body.get("NewImage"), body.get("OldImage")]))
        body["StreamViewType"] = "NEW_AND_OLD_IMAGES"
        return {
            "eventID": hashlib.md5(f"{self.slot}:{seq}".encode()).hexdigest(),
            "eventName": EVENT_NAMES[action],
            "eventVersion": "1.1",
            "eventSource": "lamina:postgres",
            "awsRegion": self.region,
            "dynamodb": body,
            "eventSourceARN": self.arn,
        }

    def records(self, txns: Sequence[Transaction], *, after: str | None, limit: int,
                not_before: float | None = None) -> tuple[list[StreamRecord], str | None, bool]:
        """Records after `after` (at most `limit`), the position they end at, and whether `limit` cut them.

        The position is after the last whole transaction when every change was taken (so transactions with
        no change of this table still move it), else the last record's sequence; None when nothing moved."""
        last_after = parse_sequence(after) if after else (-1, -1)
        out: list[StreamRecord] = []
        position: str | None = None
        for txn in txns:
            if (txn.commit_lsn, TXN_END) <= last_after:
                continue
            for index, change in enumerate(txn.changes, start=1):
                if (txn.commit_lsn, index) <= last_after:
                    continue
                if not_before is not None and txn.committed < not_before:
                    continue
                if len(out) >= limit:
                    return out, out[-1].sequence, True
                seq = sequence(txn.commit_lsn, index)
                event = self.event(change, seq, txn.committed)
                out.append(StreamRecord(sequence=seq, arrival=txn.committed, event=event,
                                        partition_key=json.dumps(event["dynamodb"]["Keys"], sort_keys=True),
                                        size=len(json.dumps(event))))
            position = sequence(txn.commit_lsn, TXN_END)
        return out, position, False
