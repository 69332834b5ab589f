"""Code directories for environments started ahead of need (standby).

A standby sandbox is started with /var/task bound to an empty slot directory; when it is assigned a
function, the function's unpacked code is hard-linked into the slot (same inodes, read-only modes, no
copying), which the running sandbox sees at once through its bind mount.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: Above this many files a package is cheaper to start the ordinary way than to link.
MAX_LINKED_FILES = 2000


class Slots:
    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.rmtree(root, ignore_errors=True)  # slots of a previous run are stale
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o711)
        self._trees: dict[Path, tuple[list[str], list[str]]] = {}

    def path(self, env_id: str) -> Path:
        """Where the slot of this environment is (made by `create`)."""
        return self.root / env_id

    def create(self, slot: Path) -> None:
        """Make the (empty) slot; done already is fine: the environment's start and its assignment make it
        in whichever order their threads run."""
        try:
            os.mkdir(slot, 0o755)
        except FileExistsError:
            return
        os.chmod(slot, 0o755)

    def _tree(self, code_dir: Path) -> tuple[list[str], list[str]]:
        found = self._trees.get(code_dir)
        if found is None:
            dirs: list[str] = []
            files: list[str] = []
            for dirpath, dirnames, filenames in os.walk(code_dir):
                rel = os.path.relpath(dirpath, code_dir)
                dirs += [os.path.normpath(os.path.join(rel, d)) for d in dirnames]
                files += [os.path.normpath(os.path.join(rel, f)) for f in filenames]
            found = self._trees[code_dir] = (dirs, files)
        return found

    def linkable(self, code_dir: Path) -> bool:
        return len(self._tree(code_dir)[1]) <= MAX_LINKED_FILES

    def fill(self, slot: Path, code_dir: Path) -> None:
        self.create(slot)
        dirs, files = self._tree(code_dir)
        for rel in dirs:
            os.mkdir(slot / rel, 0o755)
            os.chmod(slot / rel, 0o755)
        for rel in files:
            os.link(code_dir / rel, slot / rel)

    def remove(self, slot: Path) -> None:
        if slot.parent == self.root:
            shutil.rmtree(slot, ignore_errors=True)
