"""Deployment packages: validation, content addressing, unpacking."""

import io
import os
import zipfile

import pytest

from lamina.errors import InvalidParameterValue
from lamina.store.blobs import BlobStore, inspect_zip
from tests.conftest import make_zip


def test_not_a_zip():
    with pytest.raises(InvalidParameterValue, match="Could not unzip"):
        inspect_zip(b"definitely not a zip")


@pytest.mark.parametrize("name", ["../evil.py", "/etc/passwd", "a/../../evil"])
def test_entries_escaping_the_code_directory(name):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo(name), "x")
    with pytest.raises(InvalidParameterValue, match="outside the code directory"):
        inspect_zip(buf.getvalue())


def test_symlink_entries():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777) << 16
        z.writestr(info, "/etc/passwd")
    with pytest.raises(InvalidParameterValue, match="symbolic link"):
        inspect_zip(buf.getvalue())


def test_store_once_and_unpack_with_modes(tmp_path):
    store = BlobStore(tmp_path / "code")
    data = make_zip({"app.py": "def h(e, c):\n    return 1\n", "bootstrap": "#!/bin/sh\n"}, {"bootstrap": 0o755})
    first = store.put(data)
    again = store.put(data)
    assert first == again
    code = store.code_dir(first.sha256_hex)
    assert (code / "app.py").read_text().startswith("def h")
    assert os.access(code / "bootstrap", os.X_OK)
    assert oct((code / "app.py").stat().st_mode & 0o777) == "0o644"
    assert store.read(first.sha256_hex) == data
    store.remove_unused(set())
    assert not code.exists()
