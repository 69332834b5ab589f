"""Standby slots: code is hard-linked into a slot, never copied, and removed with it."""

import os

from lamina.sandbox.slots import Slots


def test_fill_links_the_tree_and_remove_cleans_up(tmp_path):
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "app.py").write_text("x = 1\n")
    (code / "pkg" / "mod.py").write_text("y = 2\n")
    slots = Slots(tmp_path / "slots")
    slot = slots.path("env1")
    slots.create(slot)
    assert slot.parent == slots.root and os.listdir(slot) == []
    assert slots.linkable(code)
    slots.fill(slot, code)
    assert (slot / "pkg" / "mod.py").read_text() == "y = 2\n"
    assert os.stat(slot / "app.py").st_ino == os.stat(code / "app.py").st_ino
    slots.remove(slot)
    assert not slot.exists() and (code / "app.py").exists()


def test_a_new_run_starts_with_no_stale_slots(tmp_path):
    slots = Slots(tmp_path / "slots")
    slots.create(slots.path("old"))
    assert not (Slots(tmp_path / "slots").root / "old").exists()


def test_a_slot_can_be_filled_before_or_after_it_is_made(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("x = 1\n")
    slots = Slots(tmp_path / "slots")
    slot = slots.path("env1")
    slots.fill(slot, code)  # the assignment's thread ran first
    slots.create(slot)  # then the start's: nothing to do
    assert os.listdir(slot) == ["app.py"] and os.stat(slot).st_mode & 0o777 == 0o755
