"""Buckets, objects and multipart uploads: metadata in the data directory's SQLite file (own
connection, tables `s3_*`), bytes in files under `<data>/s3/`.

An object's file is named by a random id, never by its key, so no key (`..`, `/`, odd Unicode) can
reach outside `objects/`. A new object is written to `tmp/`, fsynced, renamed into `objects/`, and only
then committed in SQLite; the file it replaces is unlinked after the commit. A crash between rename
and commit leaves an unreferenced file under objects/ (harmless); never a row without its file.
Temp files of bodies a crash cut off are removed when the store opens.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import uuid
from pathlib import Path

from lamina.store.db import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS s3_buckets (
    name          TEXT PRIMARY KEY,
    created       REAL NOT NULL,
    region        TEXT NOT NULL,
    notification  TEXT
);
CREATE TABLE IF NOT EXISTS s3_objects (
    bucket        TEXT NOT NULL,
    key           TEXT NOT NULL,
    file          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    etag          TEXT NOT NULL,
    content_type  TEXT,
    metadata      TEXT NOT NULL,
    modified      REAL NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE TABLE IF NOT EXISTS s3_uploads (
    id            TEXT PRIMARY KEY,
    bucket        TEXT NOT NULL,
    key           TEXT NOT NULL,
    content_type  TEXT,
    metadata      TEXT NOT NULL,
    initiated     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS s3_parts (
    upload        TEXT NOT NULL,
    number        INTEGER NOT NULL,
    file          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    etag          TEXT NOT NULL,
    modified      REAL NOT NULL,
    PRIMARY KEY (upload, number)
);
CREATE TABLE IF NOT EXISTS s3_counters (
    name          TEXT PRIMARY KEY,
    last          INTEGER NOT NULL
);
"""
COPY_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    created: float
    region: str
    notification: str | None  # the stored configuration, JSON


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectInfo:
    bucket: str
    key: str
    file: str  # name under objects/
    size: int
    etag: str  # without quotes
    content_type: str | None
    metadata: dict[str, str]
    modified: float


@dataclasses.dataclass(frozen=True, slots=True)
class Upload:
    id: str
    bucket: str
    key: str
    content_type: str | None
    metadata: dict[str, str]
    initiated: float


@dataclasses.dataclass(frozen=True, slots=True)
class Part:
    number: int
    file: str
    size: int
    etag: str
    modified: float


@dataclasses.dataclass(frozen=True, slots=True)
class Written:
    """A body written to a temp file, not yet an object."""

    path: Path
    size: int
    md5: str
    sha256: str | None


class TempFile:
    """A body being written: `write` (blocking; run off the loop for big chunks), then `finish` or
    `discard`."""

    def __init__(self, path: Path, want_sha256: bool) -> None:
        self.path = path
        self._file = open(path, "wb")
        self._md5 = hashlib.md5()
        self._sha = hashlib.sha256() if want_sha256 else None
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._md5.update(data)
        if self._sha is not None:
            self._sha.update(data)
        self.size += len(data)

    def finish(self) -> Written:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return Written(self.path, self.size, self._md5.hexdigest(),
                       self._sha.hexdigest() if self._sha is not None else None)

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class ObjectStore:
    def __init__(self, root: Path, db_path: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._objects = root / "objects"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._objects.mkdir(parents=True, exist_ok=True)
        for leftover in self._tmp.iterdir():  # bodies of requests a previous run did not finish
            leftover.unlink(missing_ok=True)
        self._db = connect(db_path, SCHEMA, synchronous="FULL")
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    # files -------------------------------------------------------------------------------------

    def temp_file(self, want_sha256: bool = False) -> TempFile:
        return TempFile(self._tmp / uuid.uuid4().hex, want_sha256)

    def path_of(self, file: str) -> Path:
        return self._objects / file[:2] / file

    def _adopt(self, written: Path) -> str:
        """Move a finished temp file under objects/; its opaque name."""
        file = uuid.uuid4().hex
        target = self.path_of(file)
        target.parent.mkdir(exist_ok=True)
        os.replace(written, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
        return file

    def _unlink(self, files: list[str]) -> None:
        for file in files:
            self.path_of(file).unlink(missing_ok=True)

    # buckets -----------------------------------------------------------------------------------

    def create_bucket(self, name: str, region: str, now: float) -> bool:
        """False when it exists already."""
        with self._lock:
            try:
                self._db.execute("INSERT INTO s3_buckets (name, created, region) VALUES (?, ?, ?)", (name, now, region))
            except sqlite3.IntegrityError:
                return False
        return True

    def bucket(self, name: str) -> Bucket | None:
        with self._lock:
            row = self._db.execute("SELECT name, created, region, notification FROM s3_buckets WHERE name = ?",
                                   (name,)).fetchone()
        return Bucket(*row) if row else None

    def buckets(self) -> list[Bucket]:
        with self._lock:
            rows = self._db.execute("SELECT name, created, region, notification FROM s3_buckets ORDER BY name")
            return [Bucket(*r) for r in rows.fetchall()]

    def delete_bucket(self, name: str) -> str:
        """'deleted', 'missing' or 'not-empty'."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM s3_objects WHERE bucket = ? LIMIT 1", (name,)).fetchone():
                return "not-empty"
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute("DELETE FROM s3_buckets WHERE name = ?", (name,))
                uploads = [r[0] for r in self._db.execute("SELECT id FROM s3_uploads WHERE bucket = ?", (name,))]
                parts = self._drop_uploads(uploads)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._unlink(parts)
        return "deleted" if cur.rowcount else "missing"

    def set_notification(self, name: str, config: str | None) -> None:
        with self._lock:
            self._db.execute("UPDATE s3_buckets SET notification = ? WHERE name = ?", (config, name))

    # objects -----------------------------------------------------------------------------------

    def _next_sequence(self) -> int:
        self._db.execute("INSERT INTO s3_counters (name, last) VALUES ('sequencer', 0) ON CONFLICT (name) DO NOTHING")
        self._db.execute("UPDATE s3_counters SET last = last + 1 WHERE name = 'sequencer'")
        return int(self._db.execute("SELECT last FROM s3_counters WHERE name = 'sequencer'").fetchone()[0])

    def put_object(self, bucket: str, key: str, written: Path, size: int, etag: str, content_type: str | None,
                   metadata: dict[str, str], now: float) -> tuple[ObjectInfo, int] | None:
        """Make a finished temp file the object at (bucket, key); (the object, its sequence number), or
        None when the bucket is gone (the file is removed)."""
        file = self._adopt(written)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if not self._db.execute("SELECT 1 FROM s3_buckets WHERE name = ?", (bucket,)).fetchone():
                    self._db.execute("ROLLBACK")
                    self._unlink([file])
                    return None
                old = self._db.execute("SELECT file FROM s3_objects WHERE bucket = ? AND key = ?",
                                       (bucket, key)).fetchone()
                self._db.execute(
                    "INSERT OR REPLACE INTO s3_objects (bucket, key, file, size, etag, content_type, metadata, "
                    "modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (bucket, key, file, size, etag, content_type, json.dumps(metadata), now))
                sequence = self._next_sequence()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._unlink([file])
                raise
        if old:
            self._unlink([old[0]])
        return ObjectInfo(bucket, key, file, size, etag, content_type, metadata, now), sequence

    def get_object(self, bucket: str, key: str) -> ObjectInfo | None:
        with self._lock:
            row = self._db.execute(
                "SELECT bucket, key, file, size, etag, content_type, metadata, modified FROM s3_objects "
                "WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
        return _object(row) if row else None

    def delete_object(self, bucket: str, key: str) -> int | None:
        """The sequence number of the deletion, or None when there was no such object."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT file FROM s3_objects WHERE bucket = ? AND key = ?",
                                       (bucket, key)).fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                self._db.execute("DELETE FROM s3_objects WHERE bucket = ? AND key = ?", (bucket, key))
                sequence = self._next_sequence()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._unlink([row[0]])
        return sequence

    def list_objects(self, bucket: str, prefix: str, after: str, limit: int) -> list[ObjectInfo]:
        """Objects whose key starts with `prefix` and sorts after `after`, in key order (UTF-8 bytes)."""
        with self._lock:
            if prefix:
                rows = self._db.execute(
                    "SELECT bucket, key, file, size, etag, content_type, metadata, modified FROM s3_objects "
                    "WHERE bucket = ? AND key > ? AND key >= ? AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?",
                    (bucket, after, prefix, len(prefix), prefix, limit)).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT bucket, key, file, size, etag, content_type, metadata, modified FROM s3_objects "
                    "WHERE bucket = ? AND key > ? ORDER BY key LIMIT ?", (bucket, after, limit)).fetchall()
        return [_object(r) for r in rows]

    # multipart uploads -------------------------------------------------------------------------

    def create_upload(self, bucket: str, key: str, content_type: str | None, metadata: dict[str, str],
                      now: float) -> Upload:
        upload = Upload(uuid.uuid4().hex + uuid.uuid4().hex, bucket, key, content_type, metadata, now)
        with self._lock:
            self._db.execute(
                "INSERT INTO s3_uploads (id, bucket, key, content_type, metadata, initiated) VALUES (?, ?, ?, ?, ?, ?)",
                (upload.id, bucket, key, content_type, json.dumps(metadata), now))
        return upload

    def upload(self, upload_id: str) -> Upload | None:
        with self._lock:
            row = self._db.execute("SELECT id, bucket, key, content_type, metadata, initiated FROM s3_uploads "
                                   "WHERE id = ?", (upload_id,)).fetchone()
        if row is None:
            return None
        return Upload(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5])

    def put_part(self, upload_id: str, number: int, written: Path, size: int, etag: str, now: float) -> bool:
        """False when the upload is gone (the file is removed)."""
        file = self._adopt(written)
        with self._lock:
            if not self._db.execute("SELECT 1 FROM s3_uploads WHERE id = ?", (upload_id,)).fetchone():
                self._unlink([file])
                return False
            old = self._db.execute("SELECT file FROM s3_parts WHERE upload = ? AND number = ?",
                                   (upload_id, number)).fetchone()
            self._db.execute("INSERT OR REPLACE INTO s3_parts (upload, number, file, size, etag, modified) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (upload_id, number, file, size, etag, now))
        if old:
            self._unlink([old[0]])
        return True

    def parts(self, upload_id: str) -> list[Part]:
        with self._lock:
            rows = self._db.execute("SELECT number, file, size, etag, modified FROM s3_parts WHERE upload = ? "
                                    "ORDER BY number", (upload_id,)).fetchall()
        return [Part(*r) for r in rows]

    def assemble(self, parts: list[Part]) -> Path:
        """Blocking: the parts concatenated into one new temp file (fsynced)."""
        target = self._tmp / uuid.uuid4().hex
        with open(target, "wb") as out:
            for part in parts:
                with open(self.path_of(part.file), "rb") as source:
                    shutil.copyfileobj(source, out, COPY_CHUNK)
            out.flush()
            os.fsync(out.fileno())
        return target

    def copy_file(self, file: str) -> Path:
        """Blocking: a copy of an object's file as a new temp file (fsynced)."""
        target = self._tmp / uuid.uuid4().hex
        shutil.copyfile(self.path_of(file), target)
        with open(target, "rb+") as out:
            os.fsync(out.fileno())
        return target

    def copy_range(self, file: str, start: int, length: int) -> Written:
        """Blocking: bytes [start, start + length) of an object's file as a finished temp file."""
        tmp = self.temp_file()
        try:
            with open(self.path_of(file), "rb") as source:
                source.seek(start)
                left = length
                while left > 0:
                    data = source.read(min(COPY_CHUNK, left))
                    if not data:
                        break
                    tmp.write(data)
                    left -= len(data)
            return tmp.finish()
        except BaseException:
            tmp.discard()
            raise

    def uploads(self, bucket: str) -> list[Upload]:
        with self._lock:
            rows = self._db.execute("SELECT id, bucket, key, content_type, metadata, initiated FROM s3_uploads "
                                    "WHERE bucket = ? ORDER BY key, initiated", (bucket,)).fetchall()
        return [Upload(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def finish_upload(self, upload_id: str) -> None:
        """Forget an upload and its parts (completed or aborted)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                files = self._drop_uploads([upload_id])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._unlink(files)

    def _drop_uploads(self, upload_ids: list[str]) -> list[str]:
        files: list[str] = []
        for upload_id in upload_ids:
            files += [r[0] for r in self._db.execute("SELECT file FROM s3_parts WHERE upload = ?", (upload_id,))]
            self._db.execute("DELETE FROM s3_parts WHERE upload = ?", (upload_id,))
            self._db.execute("DELETE FROM s3_uploads WHERE id = ?", (upload_id,))
        return files


def _object(row: tuple[object, ...]) -> ObjectInfo:
    bucket, key, file, size, etag, content_type, metadata, modified = row
    return ObjectInfo(str(bucket), str(key), str(file), int(size), str(etag),  # type: ignore[call-overload]
                      content_type if content_type is None else str(content_type), json.loads(str(metadata)),
                      float(modified))  # type: ignore[arg-type]
