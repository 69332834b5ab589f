"""Each environment's /tmp: a sparse ext4 image on the data disk, loop-mounted, sized to EphemeralStorage.

Why not tmpfs: tmpfs pages are memory, charged to the writer's memory cgroup, so a 128 MB function
could never fill its 512 MB /tmp — it would be OOM-killed instead of getting ENOSPC as on Lambda. A
file-system image gives a hard size limit (ENOSPC inside the function, the host disk untouched beyond
the image) and its page cache stays reclaimable. The image is sparse: an empty /tmp costs ~60 KB.

Cost here: mount ≈11 ms — paid off the invoke path for standby environments, on it for others.
mkfs.ext4 (≈12 ms, ≈3 ms of CPU) runs once per size: each image is a sparse copy of a formatted template
of that size (≈0.2 ms: only the ~60 KB of metadata blocks are copied; the template's root is already
1777 with no lost+found).

Images are slots of a few shared sparse files (SLOTS_PER_SLAB slots each, one series per size), each
attached as a loop device limited to its slot (offset, size limit): making a file per environment meant
an inode allocated and later freed for each, and on an ext4 without a journal (this project's test VM)
every allocation first scans the inodes freed in the last minutes — after a burst's environments were
removed, the next burst's images took ~9% of its CPU in that scan. A slot whose environment is gone is
reused once its loop device has let go of it (its ext4 may write its superblock as it goes): its blocks
are punched out, then the template copied in again. A few environments per file, not all of them: a
loop device writes into its backing file under that file's lock.

Each image is mounted in a mount namespace of the environment's own, never in the host's: a forked Python
environment mounts its loop device (`device`) itself, with fsopen/fsmount (runtimes/python/zygote.py); an
exec'd one goes through `mount_argv` (unshare, mount, then exec the sandbox). bubblewrap reads the whole
mount table for every bind it makes, so host-visible volumes made each new sandbox slower the more
environments were running (with 1,000 environments, a fifth of a burst's CPU went to bwrap parsing
/proc/self/mountinfo). The mount goes away with the environment's last process; nothing is left to
unmount.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import fcntl
import heapq
import os
import shutil
import struct
import subprocess
import threading
from pathlib import Path

from lamina.errors import SandboxError

UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"

#: ext4 metadata takes ~3.7% of a small image; size it so that at least the asked-for MB are usable.
OVERHEAD = 1.045
EXTRA_MB = 8


#: ext4 options of every volume besides nosuid,nodev. /tmp is scratch that dies with its environment:
#: `nobarrier` — no cache flushes, which the loop device turns into an fsync of the image on the host disk
#: (at mount and unmount); `noinit_itable` — no kernel thread zeroing the inode tables in the background
#: (mkfs left them to do lazily; nothing reads an unused inode). In a burst of environments, both were
#: host disk writes per environment.
MOUNT_OPTIONS = "nobarrier,noinit_itable"

#: Run by /bin/sh inside the environment's new mount namespace: mount its loop device, exec the sandbox.
_MOUNT_SCRIPT = f'mount -t ext4 -o nosuid,nodev,{MOUNT_OPTIONS} "$1" "$2" || exit 125; shift 2; exec "$@"'

#: Environments' images per shared file (see above).
SLOTS_PER_SLAB = 16
#: Slots are this aligned (a loop device's offset must be a multiple of its block size).
SLOT_ALIGN = 1 << 20

LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_AUTOCLEAR = 4
#: fd, block_size, loop_info64 (device, inode, rdevice skipped; offset, sizelimit; flags at 52), reserved
_LOOP_CONFIG = struct.Struct("=II24xQQIIII64s64s32s16x64x")
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2


def attach_loop(backing: int, offset: int, size: int, name: str) -> tuple[int, str]:
    """Attach `size` bytes at `offset` of the open file `backing` to a free loop device with autoclear (it
    detaches once nothing holds it: no mount, no open fd). Returns (an open fd on the device, its path): the
    caller holds the fd until the image is mounted. `mount -o loop` would instead scan every loop device in
    sysfs for one already on the file: with hundreds of environments up, most of mount's time."""
    control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(64):
            number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
            device = f"/dev/loop{number}"
            try:
                fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            config = _LOOP_CONFIG.pack(backing, 0, offset, size, 0, 0, 0, LO_FLAGS_AUTOCLEAR,
                                       name.encode()[:63], b"", b"")
            try:
                fcntl.ioctl(fd, LOOP_CONFIGURE, config)
                return fd, device
            except OSError as exc:
                os.close(fd)
                if exc.errno != errno.EBUSY:  # another thread took it between the two calls: try again
                    raise
        raise SandboxError("no free loop device")
    finally:
        os.close(control)


def still_attached(device: str, backing: Path, offset: int) -> bool:
    """Whether loop `device` still serves `offset` of `backing` (sysfs shows a loop's file and offset only
    while it is bound; bound to anything else, it has let go of this one)."""
    sysfs = f"/sys/block/{os.path.basename(device)}/loop/"
    try:
        with open(sysfs + "offset") as f:
            if int(f.read()) != offset:
                return False
        with open(sysfs + "backing_file") as f:
            return f.read().strip() == str(backing)
    except (OSError, ValueError):
        return False


_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]


def punch(fd: int, offset: int, size: int) -> None:
    """Free the blocks of `size` bytes at `offset` (they read as zeros again; the file keeps its size)."""
    if _libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, size) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def available() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "needs root to mount the /tmp images"
    for tool in ("mkfs.ext4", "mount", "umount", "unshare"):
        if not shutil.which(tool):
            return False, f"{tool} is not installed"
    if not os.path.exists("/dev/loop-control"):
        return False, "no loop devices (/dev/loop-control)"
    return True, "ext4 image per environment, loop-mounted"


def _run(argv: list[str]) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxError(f"{argv[0]} failed: {exc}") from exc
    if result.returncode != 0:
        raise SandboxError(f"{' '.join(argv[:2])} failed: {result.stderr.strip() or result.returncode}")


def data_extents(fd: int) -> list[tuple[int, int]]:
    """(offset, length) of each stretch of data in the file (SEEK_DATA / SEEK_HOLE): the rest is holes."""
    extents, offset = [], 0
    while True:
        try:
            data = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after offset
            return extents
        offset = os.lseek(fd, data, os.SEEK_HOLE)
        extents.append((data, offset - data))


def copy_extents(src: int, dst: int, extents: list[tuple[int, int]], at: int = 0) -> None:
    """Copy those stretches of `src` to the same offsets plus `at` in `dst` (copy_file_range)."""
    for data, length in extents:
        end = data + length
        while data < end:
            copied = os.copy_file_range(src, dst, end - data, data, data + at)
            if copied <= 0:
                raise OSError(f"copy_file_range stopped at {data} of {end}")
            data += copied


def sparse_copy(source: Path, target: Path) -> None:
    """Copy only the data of `source` to a new file: holes stay holes."""
    src = os.open(source, os.O_RDONLY)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(dst, os.fstat(src).st_size)
            copy_extents(src, dst, data_extents(src))
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _tidy_root(image: Path, mountpoint: Path) -> None:
    """Make a fresh file system's root what /tmp needs (1777, no lost+found), once, in the template."""
    mountpoint.mkdir(mode=0o700, exist_ok=True)
    _run(["mount", "-o", "loop,nosuid,nodev", str(image), str(mountpoint)])
    try:
        os.chmod(mountpoint, 0o1777)
        shutil.rmtree(mountpoint / "lost+found", ignore_errors=True)
    finally:
        _run(["umount", str(mountpoint)])
    mountpoint.rmdir()


class _Series:
    """The slots of one image size: files `slab-<size>-<k>.img` of SLOTS_PER_SLAB slots each, made as needed
    and sparse. Not thread-safe: TmpVolumes holds its lock around every call."""

    def __init__(self, root: Path, size_mb: int, template: Path) -> None:
        self.root = root
        self.size_mb = size_mb
        self.stride = -(-size_mb * 2**20 // SLOT_ALIGN) * SLOT_ALIGN
        self.template = os.open(template, os.O_RDONLY | os.O_CLOEXEC)
        self.extents = data_extents(self.template)  # the template never changes: read its layout once
        self._files: dict[int, int] = {}  # slab number -> fd
        self._free: list[int] = []  # a heap: the lowest free slot first, so the slabs stay few
        self._next = 0
        self._cooling: collections.deque[tuple[int, str]] = collections.deque()  # (slot, its loop device)

    def path(self, slot: int) -> Path:
        return self.root / f"slab-{self.size_mb}-{slot // SLOTS_PER_SLAB}.img"

    def locate(self, slot: int) -> tuple[int, int]:
        """(an fd on the slot's slab, the slot's offset in it)."""
        number = slot // SLOTS_PER_SLAB
        fd = self._files.get(number)
        if fd is None:
            fd = os.open(self.path(slot), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.ftruncate(fd, SLOTS_PER_SLAB * self.stride)
            self._files[number] = fd
        return fd, (slot % SLOTS_PER_SLAB) * self.stride

    def take(self) -> int:
        self._sweep()
        if self._free:
            return heapq.heappop(self._free)
        self._next += 1
        return self._next - 1

    def release(self, slot: int, device: str) -> None:
        """The slot's environment is gone; its loop device (if any) lets go of it once its mount is gone."""
        self._cooling.append((slot, device))
        self._sweep()

    def _sweep(self, most: int = 8) -> None:
        """Slots given back whose loop device has let go of them: blocks punched out, free again. A few at
        a time (each is two sysfs reads), oldest first; one still held goes to the back."""
        for _ in range(min(most, len(self._cooling))):
            slot, device = self._cooling.popleft()
            fd, offset = self.locate(slot)
            if device and still_attached(device, self.path(slot), offset):
                self._cooling.append((slot, device))
                continue
            punch(fd, offset, self.stride)
            heapq.heappush(self._free, slot)

    def close(self) -> None:
        for fd in [self.template, *self._files.values()]:
            os.close(fd)
        self._files.clear()


class _Volume:
    __slots__ = ("series", "slot", "fd", "device")

    def __init__(self, series: _Series, slot: int) -> None:
        self.series = series
        self.slot = slot
        self.fd = -1  # holds the loop device until the environment is removed
        self.device = ""


class TmpVolumes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._templates = root / "templates"
        self._template_lock = threading.Lock()
        self._lock = threading.Lock()  # the series and the volumes
        self._series: dict[int, _Series] = {}  # image size (MB) -> its slots
        self._volumes: dict[str, _Volume] = {}  # env id -> its slot and loop device

    def _template(self, size_mb: int) -> Path:
        """A formatted, empty image of `size_mb` (made once per size; later images copy it)."""
        path = self._templates / f"{size_mb}.img"
        if path.exists():
            return path
        with self._template_lock:
            if not path.exists():
                self._templates.mkdir(mode=0o700, exist_ok=True)
                partial = self._templates / f"{size_mb}.img.partial"
                partial.unlink(missing_ok=True)
                with open(partial, "wb") as f:
                    f.truncate(size_mb * 1024 * 1024)
                # No journal (scratch), no blocks reserved for online resizing (252 KB of the 380 KB
                # every image copied), no root reserve.
                _run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal,^resize_inode", "-m", "0",
                      "-E", "lazy_itable_init=1,nodiscard", str(partial)])
                _tidy_root(partial, self._templates / "mnt")
                if shutil.which("fallocate"):  # the zeros mkfs wrote (old-signature wipes) become holes
                    _run(["fallocate", "--dig-holes", str(partial)])
                partial.rename(path)
        return path

    def start(self) -> None:
        """Create the root and clear what a previous run of this data directory left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        self.cleanup_stale()

    def mountpoint(self, env_id: str) -> Path:
        return self.root / env_id

    def create(self, env_id: str, size_mb: int) -> str:
        """Make the environment's image (a slot holding a copy of the formatted template) and attach it to a
        loop device; returns the device."""
        size = int(size_mb * OVERHEAD) + EXTRA_MB
        try:
            with self._lock:
                series = self._series.get(size)
            if series is None:  # the first of its size: its template (mkfs) made outside the lock
                template = self._template(size)
                with self._lock:
                    series = self._series.get(size)  # another thread may have made it meanwhile
                    if series is None:
                        series = self._series[size] = _Series(self.root, size, template)
            with self._lock:
                volume = self._volumes[env_id] = _Volume(series, series.take())
                backing, offset = series.locate(volume.slot)
            copy_extents(series.template, backing, series.extents, offset)
            fd, device = attach_loop(backing, offset, series.stride, env_id)
            with self._lock:
                volume.fd, volume.device = fd, device
        except (OSError, SandboxError) as exc:
            self.remove(env_id)
            raise SandboxError(f"cannot make /tmp for {env_id}: {exc}") from exc
        return device

    def device(self, env_id: str) -> str:
        """The loop device the environment's image is attached to."""
        with self._lock:
            return self._volumes[env_id].device

    def mount_argv(self, env_id: str) -> list[str]:
        """A prefix for the sandbox's argv: a new mount namespace in which the image is mounted."""
        device = self.device(env_id)
        self.mountpoint(env_id).mkdir(mode=0o700, exist_ok=True)  # only bubblewrap binds it from here
        return [UNSHARE, "--mount", "--propagation", "private", "/bin/sh", "-c", _MOUNT_SCRIPT, "lamina-tmp",
                device, str(self.mountpoint(env_id))]

    def remove(self, env_id: str) -> None:
        """Give the environment's slot back and remove its mount point (idempotent; a host mount, from an older
        lamina, is undone). The environment is gone, so its mount is going: once it is, our fd on the loop
        device closed, the device detaches and the slot is reused."""
        with self._lock:
            volume = self._volumes.pop(env_id, None)
        if volume is not None:
            if volume.fd >= 0:
                os.close(volume.fd)
            with self._lock:
                volume.series.release(volume.slot, volume.device)
        target = self.mountpoint(env_id)
        if os.path.ismount(target):
            subprocess.run(["umount", "-l", str(target)], capture_output=True)
        try:
            target.rmdir()
        except OSError:
            pass

    def cleanup_stale(self) -> None:
        """Volumes a previous run left behind (a crash, kill -9)."""
        prefix = str(self.root) + "/"
        with open("/proc/self/mountinfo") as f:
            mounted = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
        for point in mounted:
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(self._templates, ignore_errors=True)  # made again on first use, by this version
        with self._lock:
            series, self._series = list(self._series.values()), {}
            self._volumes.clear()  # the slabs go: loop devices still on them keep their (unlinked) files
        for one in series:
            one.close()
        for entry in self.root.iterdir():
            if entry.suffix == ".img":
                entry.unlink(missing_ok=True)
            elif entry.is_dir():
                try:
                    entry.rmdir()
                except OSError:
                    pass
