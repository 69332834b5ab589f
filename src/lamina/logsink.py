"""Where function and platform log lines go: the log store (store/logs.py, read through the CloudWatch
Logs API) and, with LAMINA_LOG_FILES=1, one file per log stream under the data directory:

    logs/<function name>/<YYYY-MM-DD>-[<version>]<environment id>.log

Both are written behind: the invoke path only queues lines; the server's writer thread writes them
every second (and a reader of the store flushes first).
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import IO

from lamina.clock import Clock
from lamina.store.logs import LogStore


class FileLogSink:
    """The files. `write` only queues (the invoke path does no file I/O: a new environment's first line
    would otherwise create its file on the event loop); `flush` — the housekeeping's writer thread, or
    anyone who needs the files current — opens, appends and flushes."""

    def __init__(self, root: Path, max_open: int = 256) -> None:
        self._root = root
        self._open: dict[tuple[str, str], IO[str]] = {}
        self._max_open = max_open
        self._pending: collections.deque[tuple[tuple[str, str], str]] = collections.deque()  # atomic ops
        self._lock = threading.Lock()  # one flusher at a time: the open files are its alone
        root.mkdir(parents=True, exist_ok=True)

    def path(self, function: str, stream: str) -> Path:
        return self._root / function / (stream.replace("/", "-", 2).replace("/", "_") + ".log")

    def write(self, function: str, stream: str, text: str) -> None:
        self._pending.append(((function, stream), text))

    def _file(self, key: tuple[str, str]) -> IO[str]:
        out = self._open.get(key)
        if out is None:
            if len(self._open) >= self._max_open:
                self._open.pop(next(iter(self._open))).close()
            path = self.path(*key)
            path.parent.mkdir(parents=True, exist_ok=True)
            out = self._open[key] = open(path, "a", encoding="utf-8", buffering=1 << 16)
        return out

    def flush(self) -> None:
        with self._lock:
            pending = self._pending
            batch: dict[tuple[str, str], list[str]] = {}
            for _ in range(len(pending)):
                key, text = pending.popleft()
                batch.setdefault(key, []).append(text)
            for key, texts in batch.items():
                self._file(key).write("".join(texts))  # opening one may close (and so flush) another
            for out in self._open.values():
                out.flush()

    def close(self) -> None:
        self.flush()
        with self._lock:
            for out in self._open.values():
                out.close()
            self._open.clear()


class NullLogSink:
    def write(self, function: str, stream: str, text: str) -> None:
        return None


class StoreLogSink:
    """Lines into the log store (queryable through the CloudWatch Logs API), and a file sink too."""

    def __init__(self, store: LogStore, clock: Clock, files: FileLogSink | None = None) -> None:
        self._store = store
        self._clock = clock
        self._files = files

    def write(self, function: str, stream: str, text: str) -> None:
        self._store.append(f"/aws/lambda/{function}", stream, int(self._clock.time() * 1000), text)
        if self._files is not None:
            self._files.write(function, stream, text)

    def flush(self) -> None:
        """Everything written so far into the store and the files: from any thread (the housekeeping's
        writer thread every second; the log API before it reads)."""
        self._store.flush(int(self._clock.time() * 1000))
        if self._files is not None:
            self._files.flush()

    def close(self) -> None:
        self.flush()
        if self._files is not None:
            self._files.close()
