"""Each environment's /tmp image is a slot of a shared sparse file, attached as a loop device limited to it
(sandbox/tmpvol.py). Needs root and loop devices (as CI has); skips otherwise. Real devices, real ext4."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from lamina.sandbox import tmpvol
from lamina.sandbox.tmpvol import SLOTS_PER_SLAB, TmpVolumes

pytestmark = pytest.mark.skipif(not tmpvol.available()[0], reason=tmpvol.available()[1])


def _sysfs(device: str, name: str) -> str:
    with open(f"/sys/block/{os.path.basename(device)}/loop/{name}") as f:
        return f.read().strip()


@pytest.fixture
def volumes(tmp_path):
    made = TmpVolumes(tmp_path / "tmp")
    made.start()
    yield made
    made.cleanup_stale()


@pytest.fixture
def mountpoint(tmp_path):
    point = tmp_path / "mnt"
    point.mkdir()
    yield point
    if os.path.ismount(point):
        _umount(point)


def _mount(device: str, point: Path) -> None:
    subprocess.run(["mount", "-t", "ext4", "-o", "nosuid,nodev", device, str(point)], check=True)


def _umount(point: Path) -> None:
    subprocess.run(["umount", str(point)], check=True)


def test_environments_share_slab_files_each_limited_to_its_slot(volumes):
    devices = [volumes.create(f"env{i}", 512) for i in range(SLOTS_PER_SLAB + 1)]
    slabs = sorted(p.name for p in volumes.root.glob("*.img"))
    assert slabs == ["slab-543-0.img", "slab-543-1.img"], slabs  # 512 MB asked: 543 MB with ext4's overhead
    offsets = [int(_sysfs(d, "offset")) for d in devices]
    stride = 543 * 2**20
    assert offsets == [i % SLOTS_PER_SLAB * stride for i in range(SLOTS_PER_SLAB + 1)], offsets
    assert {int(_sysfs(d, "sizelimit")) for d in devices} == {stride}
    assert {_sysfs(d, "backing_file") for d in devices[:SLOTS_PER_SLAB]} == {str(volumes.root / "slab-543-0.img")}
    for i in range(SLOTS_PER_SLAB + 1):
        volumes.remove(f"env{i}")


def test_a_slot_is_a_fresh_ext4_of_its_size_and_writes_stay_in_it(volumes, mountpoint):
    first, second = volumes.create("a", 512), volumes.create("b", 512)
    _mount(first, mountpoint)
    assert oct(os.stat(mountpoint).st_mode & 0o7777) == "0o1777" and os.listdir(mountpoint) == []
    usable = os.statvfs(mountpoint)
    assert 512 <= usable.f_blocks * usable.f_frsize / 2**20 <= 560
    (mountpoint / "big").write_bytes(os.urandom(1 << 20) * 64)
    _umount(mountpoint)
    _mount(second, mountpoint)  # the neighbouring slot saw none of it
    assert os.listdir(mountpoint) == []
    _umount(mountpoint)
    volumes.remove("a")
    volumes.remove("b")


def test_a_slot_given_back_is_reused_empty_once_its_device_let_go(volumes, mountpoint):
    device = volumes.create("old", 512)
    _mount(device, mountpoint)
    (mountpoint / "secret").write_text("the previous function's file")
    volumes.remove("old")  # its mount is still up: the slot cools, it is not reused yet
    assert _sysfs(device, "offset") == "0"
    other = volumes.create("other", 512)
    assert _sysfs(other, "offset") != "0"
    _umount(mountpoint)  # the environment's mount is gone: detached
    deadline = time.monotonic() + 5
    while os.path.exists(f"/sys/block/{os.path.basename(device)}/loop/offset") and time.monotonic() < deadline:
        time.sleep(0.01)
    reused = volumes.create("new", 512)
    assert _sysfs(reused, "offset") == "0"  # the lowest free slot
    _mount(reused, mountpoint)
    assert os.listdir(mountpoint) == []  # punched out and formatted again: nothing of the last one
    _umount(mountpoint)
    volumes.remove("new")
    volumes.remove("other")


def test_a_slot_given_back_frees_its_blocks(volumes, mountpoint):
    device = volumes.create("filler", 512)
    _mount(device, mountpoint)
    (mountpoint / "data").write_bytes(os.urandom(1 << 20) * 32)
    _umount(mountpoint)
    slab = volumes.root / "slab-543-0.img"
    assert os.stat(slab).st_blocks * 512 >= 32 * 2**20
    volumes.remove("filler")
    volumes.create("next", 512)  # sweeps the slot given back (its device has let go): punched out
    volumes.remove("next")
    volumes.create("after", 512)
    assert os.stat(slab).st_blocks * 512 < 4 * 2**20
    volumes.remove("after")
