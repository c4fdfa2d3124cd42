"""Atomic writes confined to the site's output folders (lektor: temp file + os.replace).

An interrupted build never leaves a half-written file, and no path outside `build/` and
`content/` is ever written, whatever a slug or an LLM says (SPEC §6-7).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .errors import InputError, Problem


def safe_join(base: Path, rel: str) -> Path:
    """`base/rel`, refusing anything that could land outside `base`."""
    parts = PurePosixPath(rel).parts
    if (not parts or PurePosixPath(rel).is_absolute() or any(p in ("..", ".", "") for p in parts)
            or "\\" in rel or "\x00" in rel):
        raise InputError("refusing to write outside the site", [Problem(rel, "unsafe output path")])
    path = base.joinpath(*parts)
    # Resolve symlinks in the existing parents too: a symlinked folder must not lead outside.
    parent = path.parent
    while not parent.exists() and parent != base:
        parent = parent.parent
    if not parent.resolve().is_relative_to(base.resolve()):
        raise InputError("refusing to write outside the site", [Problem(rel, "output path leaves the site")])
    return path


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and os.replace.

    A killed process leaves either the old file or the new one, never half of one. (No fsync:
    that guards against power loss, not kills, and costs a millisecond per file.) Builds of one
    site are serialised by the site lock, so a per-process temp name is enough.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class OutputWriter:
    """Writes into the output folder, skipping files whose bytes are already there."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.written: list[str] = []
        self.removed: list[str] = []
        self._exists: dict[str, bool] = {}  # one stat per file per build, however often asked
        self._out = os.fspath(out_dir)

    def write(self, rel: str, data: bytes) -> bool:
        path = safe_join(self.out_dir, rel)
        try:
            if path.stat().st_size == len(data) and path.read_bytes() == data:
                return False
        except FileNotFoundError:
            pass
        atomic_write(path, data)
        self._exists[rel] = True
        self.written.append(rel)
        return True

    def exists(self, rel: str) -> bool:
        found = self._exists.get(rel)
        if found is None:
            found = self._exists[rel] = os.path.isfile(os.path.join(self._out, rel))
        return found

    def remove(self, rel: str) -> None:
        path = safe_join(self.out_dir, rel)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        self._exists[rel] = False
        self.removed.append(rel)
        # Prune folders the removal emptied (e.g. build/metal/old-slug/).
        parent = path.parent
        while parent != self.out_dir and parent.is_relative_to(self.out_dir):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
