"""Each environment's /tmp: a sparse ext4 image on the data disk, loop-mounted, sized to EphemeralStorage.

Why not tmpfs: tmpfs pages are memory, charged to the writer's memory cgroup, so a 128 MB function
could never fill its 512 MB /tmp — it would be OOM-killed instead of getting ENOSPC as on Lambda. A
file-system image gives a hard size limit (ENOSPC inside the function, the host disk untouched beyond
the image) and its page cache stays reclaimable. The image is sparse: an empty /tmp costs ~60 KB.

Cost here: mount ≈11 ms — paid off the invoke path for standby environments, on it for others.
mkfs.ext4 (≈12 ms, ≈3 ms of CPU) runs once per size: each image is a sparse copy of a formatted template
of that size (≈0.2 ms: only the ~60 KB of metadata blocks are copied; the template's root is already
1777 with no lost+found).

Each image is mounted in a mount namespace of the environment's own, never in the host's: a forked Python
environment mounts its loop device (`device`) itself, with fsopen/fsmount (runtimes/python/zygote.py); an
exec'd one goes through `mount_argv` (unshare, mount, then exec the sandbox). bubblewrap reads the whole
mount table for every bind it makes, so host-visible volumes made each new sandbox slower the more
environments were running (with 1,000 environments, a fifth of a burst's CPU went to bwrap parsing
/proc/self/mountinfo). The mount goes away with the environment's last process; nothing is left to
unmount.
"""

from __future__ import annotations

import errno
import fcntl
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

LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_AUTOCLEAR = 4
_LOOP_CONFIG = struct.Struct("=II40xIIII64s64s32s16x64x")  # fd, block_size, loop_info64 (flags at 52), reserved


def attach_loop(image: Path) -> tuple[int, str]:
    """Attach `image` to a free loop device with autoclear (it detaches once nothing holds it: no mount,
    no open fd). Returns (an open fd on the device, its path): the caller holds the fd until the image is
    mounted. `mount -o loop` would instead scan every loop device in sysfs for one already on the file:
    with hundreds of environments up, most of mount's time."""
    control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(64):
                number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
                device = f"/dev/loop{number}"
                try:
                    fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                config = _LOOP_CONFIG.pack(backing, 0, 0, 0, 0, LO_FLAGS_AUTOCLEAR, image.name.encode()[:63], b"", b"")
                try:
                    fcntl.ioctl(fd, LOOP_CONFIGURE, config)
                    return fd, device
                except OSError as exc:
                    os.close(fd)
                    if exc.errno != errno.EBUSY:  # another thread took it between the two calls: try again
                        raise
            raise SandboxError("no free loop device")
        finally:
            os.close(backing)
    finally:
        os.close(control)


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


def sparse_copy(source: Path, target: Path) -> None:
    """Copy only the data extents of `source` (SEEK_DATA/SEEK_HOLE + copy_file_range): holes stay holes."""
    src = os.open(source, os.O_RDONLY)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(dst, os.fstat(src).st_size)
            offset = 0
            while True:
                try:
                    data = os.lseek(src, offset, os.SEEK_DATA)
                except OSError:  # ENXIO: no data after offset
                    break
                hole = os.lseek(src, data, os.SEEK_HOLE)
                while data < hole:
                    copied = os.copy_file_range(src, dst, hole - data, data, data)
                    if copied <= 0:
                        raise OSError(f"copy_file_range stopped at {data} of {hole}")
                    data += copied
                offset = hole
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


class TmpVolumes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._templates = root / "templates"
        self._template_lock = threading.Lock()
        #: env id -> (an fd holding its loop device until the environment is removed, the device's path)
        self._loops: dict[str, tuple[int, str]] = {}
        self._loops_lock = threading.Lock()

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

    def image(self, env_id: str) -> Path:
        return self.root / f"{env_id}.img"

    def create(self, env_id: str, size_mb: int) -> str:
        """Make the environment's image (a copy of the formatted template) and attach it to a loop device;
        returns the device."""
        size = int(size_mb * OVERHEAD) + EXTRA_MB
        try:
            sparse_copy(self._template(size), self.image(env_id))
            fd, device = attach_loop(self.image(env_id))
            with self._loops_lock:
                self._loops[env_id] = (fd, device)
        except (OSError, SandboxError) as exc:
            self.remove(env_id)
            raise SandboxError(f"cannot make /tmp for {env_id}: {exc}") from exc
        return device

    def device(self, env_id: str) -> str:
        """The loop device the environment's image is attached to."""
        with self._loops_lock:
            return self._loops[env_id][1]

    def mount_argv(self, env_id: str) -> list[str]:
        """A prefix for the sandbox's argv: a new mount namespace in which the image is mounted."""
        device = self.device(env_id)
        self.mountpoint(env_id).mkdir(mode=0o700, exist_ok=True)  # only bubblewrap binds it from here
        return [UNSHARE, "--mount", "--propagation", "private", "/bin/sh", "-c", _MOUNT_SCRIPT, "lamina-tmp",
                device, str(self.mountpoint(env_id))]

    def remove(self, env_id: str) -> None:
        """Delete the image and its mount point (idempotent; a host mount, from an older lamina, is undone).
        The environment is gone, so its mount is too: closing our fd on the loop device detaches it."""
        with self._loops_lock:
            loop = self._loops.pop(env_id, None)
        if loop is not None:
            os.close(loop[0])
        target = self.mountpoint(env_id)
        if os.path.ismount(target):
            subprocess.run(["umount", "-l", str(target)], capture_output=True)
        try:
            target.rmdir()
        except OSError:
            pass
        (self.root / f"{env_id}.img").unlink(missing_ok=True)

    def cleanup_stale(self) -> None:
        """Volumes a previous run left behind (a crash, kill -9)."""
        prefix = str(self.root) + "/"
        with open("/proc/self/mountinfo") as f:
            mounted = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
        for point in mounted:
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(self._templates, ignore_errors=True)  # made again on first use, by this version
        for entry in self.root.iterdir():
            if entry.suffix == ".img":
                entry.unlink(missing_ok=True)
            elif entry.is_dir():
                try:
                    entry.rmdir()
                except OSError:
                    pass
