"""The /tmp images are sparse copies of a template: same bytes, and the holes stay holes."""

from __future__ import annotations

import os

from lamina.sandbox.tmpvol import sparse_copy


def test_sparse_copy_keeps_data_and_holes(tmp_path):
    source, target = tmp_path / "t.img", tmp_path / "c.img"
    with open(source, "wb") as f:
        f.truncate(64 * 1024 * 1024)
        for offset in (0, 5 * 1024 * 1024, 64 * 1024 * 1024 - 4096):
            f.seek(offset)
            f.write(os.urandom(4096))
    sparse_copy(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert os.stat(target).st_blocks * 512 <= 1024 * 1024  # ~12 KB of data, not 64 MB
    assert oct(os.stat(target).st_mode & 0o777) == "0o600"
