"""Content-addressed code packages: each zip stored once by SHA-256 and unpacked once per SHA.

Layout under the data directory:  code/<sha256 hex>.zip  and  code/<sha256 hex>/  (the unpacked tree,
world-readable so the sandbox user can read it, never writable by it).
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


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o711)  # the sandbox user may traverse to a code tree, never list

    def zip_path(self, sha: str) -> Path:
        return self.root / f"{sha}.zip"

    def code_dir(self, sha: str) -> Path:
        return self.root / sha

    def put(self, data: bytes) -> Package:
        """Store and unpack a package (idempotent per SHA)."""
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
        self.unpack(package.sha256_hex)
        return package

    def read(self, sha: str) -> bytes:
        return self.zip_path(sha).read_bytes()

    def unpack(self, sha: str) -> Path:
        final = self.code_dir(sha)
        if final.exists():
            return final
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".unpack-"))
        with zipfile.ZipFile(self.zip_path(sha)) as archive:
            for info in archive.infolist():
                dest = tmp / info.filename
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
                mode = (info.external_attr >> 16) & 0o777
                os.chmod(dest, 0o755 if mode & 0o111 else 0o644)
        # Precompile Python sources for the interpreter lamina runs on (the usual python3.x runtime);
        # the sandbox is read-only, so without this every cold start would compile from source.
        compileall.compile_dir(tmp, quiet=2, workers=1, ddir="/var/task")
        for dirpath, dirnames, _ in os.walk(tmp):
            os.chmod(dirpath, 0o755)
        try:
            os.rename(tmp, final)
        except OSError:  # another unpack won the race
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def remove_unused(self, in_use: set[str]) -> None:
        for entry in self.root.iterdir():
            sha = entry.name.removesuffix(".zip")
            if len(sha) == 64 and sha not in in_use:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
