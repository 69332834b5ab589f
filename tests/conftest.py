"""Shared test helpers: zip packages in memory, free ports."""

from __future__ import annotations

import io
import socket
import zipfile

import pytest


def make_zip(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            mode = (modes or {}).get(name, 0o644)
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, content)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def zipper():
    return make_zip
