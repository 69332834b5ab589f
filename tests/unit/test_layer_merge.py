"""Merging a function's layers into one /opt tree: order, overwrites, content addressing, clean-up."""

from __future__ import annotations

import os

from lamina.store.blobs import BlobStore, stack_key
from tests.conftest import make_zip


def put(blobs: BlobStore, files: dict[str, str], modes: dict[str, int] | None = None) -> str:
    return blobs.put(make_zip(files, modes), unpack=False).sha256_hex


def test_layers_are_not_unpacked_on_their_own(tmp_path):
    blobs = BlobStore(tmp_path / "code")
    sha = put(blobs, {"python/a.py": "A = 1\n"})
    assert blobs.zip_path(sha).exists() and not blobs.code_dir(sha).exists()


def test_later_layers_overwrite_earlier_files(tmp_path):
    blobs = BlobStore(tmp_path / "code")
    first = put(blobs, {"python/shared.py": "WHO = 'first'\n", "python/only_first.py": "X = 1\n"})
    second = put(blobs, {"python/shared.py": "WHO = 'second'\n", "bin/tool": "#!/bin/sh\n"}, {"bin/tool": 0o755})
    tree = blobs.merged([first, second])
    assert (tree / "python/shared.py").read_text() == "WHO = 'second'\n"
    assert (tree / "python/only_first.py").exists()
    assert os.access(tree / "bin/tool", os.X_OK)
    assert (blobs.merged([second, first]) / "python/shared.py").read_text() == "WHO = 'first'\n"


def test_a_later_directory_replaces_an_earlier_file_and_back(tmp_path):
    blobs = BlobStore(tmp_path / "code")
    as_file = put(blobs, {"thing": "plain file"})
    as_dir = put(blobs, {"thing/inside.txt": "in a directory"})
    assert (blobs.merged([as_file, as_dir]) / "thing/inside.txt").read_text() == "in a directory"
    assert (blobs.merged([as_dir, as_file]) / "thing").read_text() == "plain file"


def test_merged_trees_are_content_addressed_and_built_once(tmp_path):
    blobs = BlobStore(tmp_path / "code")
    a, b = put(blobs, {"a.txt": "a"}), put(blobs, {"b.txt": "b"})
    tree = blobs.merged([a, b])
    assert tree.name == stack_key([a, b]) and tree.parent == blobs.opt_root
    marker = tree / "a.txt"
    inode = marker.stat().st_ino
    assert blobs.merged([a, b]) == tree and marker.stat().st_ino == inode
    assert stack_key([a, b]) != stack_key([b, a])


def test_merged_tree_is_readable_and_python_is_precompiled(tmp_path):
    blobs = BlobStore(tmp_path / "code")
    tree = blobs.merged([put(blobs, {"python/mod.py": "X = 1\n"})])
    assert oct((tree / "python").stat().st_mode & 0o777) == "0o755"
    assert oct((tree / "python/mod.py").stat().st_mode & 0o777) == "0o644"
    assert list((tree / "python/__pycache__").glob("mod.*.pyc"))


def test_unused_trees_and_layer_packages_are_removed(tmp_path):
    blobs = BlobStore(tmp_path / "code")
    a, b = put(blobs, {"a.txt": "a"}), put(blobs, {"b.txt": "b"})
    kept, dropped = blobs.merged([a]), blobs.merged([a, b])
    blobs.remove_unused({a}, {(a,)})
    assert kept.exists() and not dropped.exists()
    assert blobs.zip_path(a).exists() and not blobs.zip_path(b).exists()
