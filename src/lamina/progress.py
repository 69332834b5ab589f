"""Progress for the CLI's long steps (packaging, uploading): one line per step on stderr.

On a terminal the line is redrawn with the elapsed time while the step runs; elsewhere (CI logs, pipes)
the step prints once when it starts and once when it ends, so logs stay short.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class Step:
    def __init__(self, text: str, stream: TextIO) -> None:
        self.text = text
        self.detail = ""
        self._stream = stream
        self._started = time.monotonic()

    def update(self, detail: str) -> None:
        self.detail = detail

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def line(self) -> str:
        detail = f" {self.detail}" if self.detail else ""
        return f"  → {self.text}{detail} … {self.elapsed():.1f} s"


@contextmanager
def step(text: str, stream: TextIO | None = None, interval_s: float = 0.2) -> Iterator[Step]:
    out = stream or sys.stderr
    current = Step(text, out)
    live = out.isatty()
    stop = threading.Event()
    if live:
        def redraw() -> None:
            while not stop.wait(interval_s):
                out.write("\r\033[K" + current.line())
                out.flush()
        ticker = threading.Thread(target=redraw, daemon=True)
        ticker.start()
    else:
        print(f"  → {text} …", file=out, flush=True)
    try:
        yield current
    except BaseException:
        stop.set()
        if live:
            out.write("\r\033[K" + current.line() + " failed\n")
        raise
    stop.set()
    detail = f" {current.detail}" if current.detail else ""
    end = "\r\033[K" if live else ""
    out.write(f"{end}  ✓ {text}{detail} ({current.elapsed():.1f} s)\n")
    out.flush()
