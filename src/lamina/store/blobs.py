"""Content-addressed code packages: each zip stored once by SHA-256 and unpacked once per SHA.

Layout under the data directory:  code/<sha256 hex>.zip  and  code/<sha256 hex>/  (the unpacked tree,
world-readable so the sandbox user can read it, never writable by it). Layer zips are stored the same
way but not unpacked on their own: a function's layers are extracted together, in order, into one
merged tree  code/opt/<key>/  (key = SHA-256 of the ordered layer SHAs), built once and mounted
read-only at /opt.
"""

from __future__ import annotations

import compileall
import dataclasses
import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from lamina.errors import InvalidParameterValue, RequestTooLarge

MAX_ZIPPED = 52_428_800
MAX_UNZIPPED = 262_144_000


@dataclasses.dataclass(frozen=True, slots=True)
class Package:
    sha256_hex: str
    size: int
    unzipped_size: int


def _entry_is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def inspect_zip(data: bytes) -> Package:
    """Check a deployment package; raise the AWS error a bad one gets."""
    if len(data) > MAX_ZIPPED:
        raise RequestTooLarge(f"Zipped size must be smaller than {MAX_ZIPPED} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise InvalidParameterValue(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from exc
    total = 0
    for info in infos:
        name = info.filename
        path = PurePosixPath(name)
        if name.startswith("/") or "\\" in name or ".." in path.parts:
            raise InvalidParameterValue(f"Zip entry {name!r} would be written outside the code directory.")
        if _entry_is_symlink(info):
            raise InvalidParameterValue(f"Zip entry {name!r} is a symbolic link; links are not allowed.")
        total += info.file_size
    if total > MAX_UNZIPPED:
        raise InvalidParameterValue(f"Unzipped size must be smaller than {MAX_UNZIPPED} bytes")
    return Package(hashlib.sha256(data).hexdigest(), len(data), total)


def stack_key(shas: list[str] | tuple[str, ...]) -> str:
    """The name of the merged tree of these layers, in this order."""
    return hashlib.sha256("\n".join(shas).encode()).hexdigest()


def _make_dirs(dest: Path, relative: PurePosixPath) -> Path:
    """mkdir -p under `dest`, replacing files that stand where a directory must be."""
    path = dest
    for part in relative.parts:
        path = path / part
        if path.exists() and not path.is_dir():
            path.unlink()
        path.mkdir(exist_ok=True)
    return path


def _extract(archive: zipfile.ZipFile, dest: Path) -> None:
    """Extract every entry under `dest`, replacing what is already there (later layers win)."""
    for info in archive.infolist():
        relative = PurePosixPath(info.filename)
        if info.is_dir():
            _make_dirs(dest, relative)
            continue
        target = _make_dirs(dest, relative.parent) / relative.name
        if target.is_dir():
            shutil.rmtree(target)
        with archive.open(info) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
        mode = (info.external_attr >> 16) & 0o777
        os.chmod(target, 0o755 if mode & 0o111 else 0o644)


def _seal(tree: Path, ddir: str) -> None:
    """Precompile Python sources for lamina's usual interpreter (the sandbox is read-only, so
    without this every cold start would compile from source) and open directories for reading."""
    compileall.compile_dir(tree, quiet=2, workers=1, ddir=ddir)
    for dirpath, _, _ in os.walk(tree):
        os.chmod(dirpath, 0o755)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o711)  # the sandbox user may traverse to a code tree, never list
        self.opt_root = root / "opt"
        self.opt_root.mkdir(exist_ok=True)
        os.chmod(self.opt_root, 0o711)

    def zip_path(self, sha: str) -> Path:
        return self.root / f"{sha}.zip"

    def code_dir(self, sha: str) -> Path:
        return self.root / sha

    def put(self, data: bytes, *, unpack: bool = True) -> Package:
        """Store (and unless told otherwise unpack) a package; idempotent per SHA."""
        package = inspect_zip(data)
        target = self.zip_path(package.sha256_hex)
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".zip-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        if unpack:
            self.unpack(package.sha256_hex)
        return package

    def read(self, sha: str) -> bytes:
        return self.zip_path(sha).read_bytes()

    def unzipped_size(self, sha: str) -> int:
        """Total uncompressed size of a stored package (read from the zip's directory only)."""
        with zipfile.ZipFile(self.zip_path(sha)) as archive:
            return sum(info.file_size for info in archive.infolist())

    def unpack(self, sha: str) -> Path:
        final = self.code_dir(sha)
        if final.exists():
            return final
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".unpack-"))
        with zipfile.ZipFile(self.zip_path(sha)) as archive:
            _extract(archive, tmp)
        _seal(tmp, "/var/task")
        try:
            os.rename(tmp, final)
        except OSError:  # another unpack won the race
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def merged(self, shas: list[str] | tuple[str, ...]) -> Path:
        """One read-only tree of these layer packages extracted in order (later files replace
        earlier ones), built once per ordered list."""
        final = self.opt_root / stack_key(shas)
        if final.exists():
            return final
        tmp = Path(tempfile.mkdtemp(dir=self.opt_root, prefix=".merge-"))
        for sha in shas:
            with zipfile.ZipFile(self.zip_path(sha)) as archive:
                _extract(archive, tmp)
        _seal(tmp, "/opt")
        try:
            os.rename(tmp, final)
        except OSError:  # another merge won the race
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def remove_unused(self, in_use: set[str], stacks_in_use: set[tuple[str, ...]] | None = None) -> None:
        """Delete packages and trees no longer needed (merged layer trees too, when their lists are given)."""
        for entry in self.root.iterdir():
            sha = entry.name.removesuffix(".zip")
            if len(sha) == 64 and sha not in in_use:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        if stacks_in_use is None:
            return
        keys = {stack_key(stack) for stack in stacks_in_use}
        for entry in self.opt_root.iterdir():
            if len(entry.name) == 64 and entry.name not in keys:
                shutil.rmtree(entry, ignore_errors=True)
