"""Which python3.x a function runs on: lamina's own interpreter, a version manager's tree, /usr."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from lamina.runtimes import registry

OWN = f"{sys.version_info.major}.{sys.version_info.minor}"


def _pyenv(tmp_path: Path, monkeypatch, *versions: str) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "pyenv"
    for v in versions:
        (root / "versions" / v / "bin").mkdir(parents=True)
    monkeypatch.setenv("PYENV_ROOT", str(root))
    monkeypatch.setattr(registry.os.path, "expanduser", lambda p: str(root) if p == "~/.pyenv" else p)
    return root


def test_lamina_s_own_tree_comes_first(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = _pyenv(tmp_path, monkeypatch, f"{OWN}.1")
    monkeypatch.setattr(registry.sys, "base_prefix", "/opt/python")
    found = registry._python_candidates(OWN)
    assert found[0] == Path(f"/opt/python/bin/python{OWN}")
    assert found[1] == root / "versions" / f"{OWN}.1" / "bin" / f"python{OWN}"


def test_an_own_interpreter_under_usr_is_taken_as_its_tree_in_build(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = _pyenv(tmp_path, monkeypatch, f"{OWN}.7")
    monkeypatch.setattr(registry.sys, "base_prefix", "/usr")
    tree = tmp_path / "lang" / f"python{OWN}" / "bin" / f"python{OWN}"
    monkeypatch.setattr(registry, "distribution_tree", lambda version: tree if version == OWN else None)
    found = registry._python_candidates(OWN)
    assert found[:2] == [tree, root / "versions" / f"{OWN}.7" / "bin" / f"python{OWN}"]


def test_an_own_interpreter_under_usr_without_a_tree_comes_after_a_tree_bound_at_var_lang(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = _pyenv(tmp_path, monkeypatch, f"{OWN}.1", f"{OWN}.7")
    monkeypatch.setattr(registry.sys, "base_prefix", "/usr")
    monkeypatch.setattr(registry, "distribution_tree", lambda version: None)
    found = registry._python_candidates(OWN)
    trees = [root / "versions" / f"{OWN}.7" / "bin" / f"python{OWN}",
             root / "versions" / f"{OWN}.1" / "bin" / f"python{OWN}"]
    assert found[:2] == trees  # newest first
    own = found.index(Path(f"/usr/bin/python{OWN}"))  # (after /root/.pyenv's too, where there is one)
    assert own > 1 and found[own + 1] == Path(f"/usr/local/bin/python{OWN}")


def test_other_versions_do_not_list_lamina_s_own(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _pyenv(tmp_path, monkeypatch)
    monkeypatch.setattr(registry.sys, "base_prefix", "/opt/python")
    assert registry._python_candidates("3.99") == [Path("/usr/local/bin/python3.99"), Path("/usr/bin/python3.99")]


def test_a_distribution_tree_counts_while_it_is_a_copy_of_the_interpreter(tmp_path) -> None:
    usr, build = tmp_path / "usr", tmp_path / "lang"
    (usr / "bin").mkdir(parents=True)
    real = usr / "bin" / "python3.11"
    real.write_bytes(b"\x7fELF interpreter")
    assert registry.distribution_tree("3.11", build, usr) is None  # not built
    copy = build / "python3.11" / "bin" / "python3.11"
    copy.parent.mkdir(parents=True)
    shutil.copy2(real, copy)
    assert registry.distribution_tree("3.11", build, usr) == copy
    real.write_bytes(b"\x7fELF interpreter, upgraded")  # the distribution's upgrade, not copied yet
    assert registry.distribution_tree("3.11", build, usr) is None
    copy.unlink()
    copy.symlink_to(real)  # a link: Python would take /usr for its prefix
    assert registry.distribution_tree("3.11", build, usr) is None
