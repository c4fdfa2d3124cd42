"""The site's input files: a stat scan, with content hashes computed only where a stat changed.

Cheap change detection first (size, mtime, ctime, inode), content hash to confirm: a file whose
stat changed but whose bytes did not is not a change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .hashing import bytes_sha

# Folders (relative to the site root) whose files are inputs of the build.
INPUT_DIRS = ("materials", "components", "layouts", "content/pages", "content/components", "data", "assets")
INPUT_FILES = ("site.yaml",)

Signature = tuple[int, int, int, int]


def _is_ignored(name: str) -> bool:
    # Hidden files, editor swap/backup files and our own temp files are never inputs.
    return name.startswith((".", "#")) or name.endswith(("~", ".swp", ".swx", ".tmp")) or name == "4913"


def _signature(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class Sources:
    """All input files of a site, as of one scan."""

    def __init__(self, root: Path, previous: dict[str, tuple[Signature, str]], extra: tuple[str, ...] = ()):
        self.root = root
        self._root = os.fspath(root)
        self.previous = previous
        # With no previous build to compare with, the scan only lists the files: each is
        # stat-ed when it is read, by the worker that reads it (50,000 stats off a cold build's
        # serial start at 10,000 materials). None: not stat-ed yet.
        self._stat_on_read = not previous
        self.signatures: dict[str, Signature | None] = {}
        self._shas: dict[str, str] = {}
        self._bytes: dict[str, bytes] = {}
        self._sorted: list[str] | None = None
        for rel in INPUT_FILES + extra:
            try:
                self.signatures[rel] = _signature(os.stat(root / rel))
            except FileNotFoundError:
                pass
        for top in INPUT_DIRS:
            self._scan(root / top, top)

    def _scan(self, folder: Path, rel: str) -> None:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if _is_ignored(entry.name):
                continue
            child = f"{rel}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                self._scan(Path(entry.path), child)
            elif entry.is_file(follow_symlinks=False):
                if self._stat_on_read:
                    self.signatures[child] = None
                    continue
                sig = _signature(entry.stat(follow_symlinks=False))
                prev = self.previous.get(child)
                # unchanged: share the recorded tuple (50,000 fewer objects at 10,000 materials)
                self.signatures[child] = prev[0] if prev is not None and prev[0] == sig else sig

    # -- queries -------------------------------------------------------------------------------

    def under(self, prefix: str) -> list[str]:
        """Files below a folder, sorted (bisecting one sorted list of every file)."""
        import bisect

        if self._sorted is None:
            self._sorted = sorted(self.signatures)
        prefix = prefix.rstrip("/") + "/"
        start = bisect.bisect_left(self._sorted, prefix)
        end = bisect.bisect_left(self._sorted, prefix[:-1] + "0")  # "0" sorts right after "/"
        return self._sorted[start:end]

    def exists(self, rel: str) -> bool:
        return rel in self.signatures

    def stat_changed(self) -> bool:
        """True when any file was added, removed or has a new stat signature."""
        if self.signatures.keys() != self.previous.keys():
            return True
        return any(self.previous[rel][0] != sig for rel, sig in self.signatures.items())

    def stat_unchanged(self, rel: str) -> bool:
        """Same stat signature as at the last successful build (cheap: no hashing)."""
        prev = self.previous.get(rel)
        return prev is not None and prev[0] == self.signatures.get(rel)

    def sha(self, rel: str) -> str:
        sha = self._shas.get(rel)
        if sha is None:
            prev = self.previous.get(rel)
            if prev is not None and prev[0] == self.signatures[rel]:
                sha = prev[1]
            else:
                data = self._read(rel)
                sha = bytes_sha(data)
                self._bytes[rel] = data  # hashed to be parsed next, most likely: read once
            self._shas[rel] = sha
        return sha

    def unchanged(self, rel: str) -> bool:
        """Same bytes as at the last successful build (what the build memo was made from)."""
        prev = self.previous.get(rel)
        return prev is not None and self.sha(rel) == prev[1]

    def read_bytes(self, rel: str) -> bytes:
        """The file's bytes (not kept: a cold build of 10,000 materials reads 50,000 files).
        Hashed as they are read: a file read is a file whose hash the build records."""
        data = self._bytes.pop(rel, None)
        if data is None:
            data = self._read(rel)
            if rel not in self._shas and rel in self.signatures:
                self._shas[rel] = bytes_sha(data)
        return data

    def known(self, rels: Sequence[str]) -> tuple[dict[str, str], dict[str, Signature]]:
        """Hashes of these files (read by this process), and the signatures it took on reading
        them (when the scan took none), for adopt()."""
        signatures = self.signatures
        return ({rel: self.sha(rel) for rel in rels},
                {rel: signatures[rel] for rel in rels} if self._stat_on_read else {})

    def adopt(self, shas: dict[str, str], signatures: dict[str, Signature] | None = None) -> None:
        """Hashes (and signatures) found by another process that read these files."""
        self._shas.update(shas)
        if signatures:
            self.signatures.update(signatures)

    def _read(self, rel: str) -> bytes:
        # os-level reads: a quarter of the syscalls of open().read(), which matters on
        # filesystems where each one costs tens of microseconds.
        fd = os.open(os.path.join(self._root, rel), os.O_RDONLY)
        try:
            sig = self.signatures.get(rel, False)
            if sig is None:  # listed, not stat-ed yet: the open file's stat is its signature
                sig = self.signatures[rel] = _signature(os.fstat(fd))
            size = sig[0] if sig else 65536
            data = os.read(fd, size + 1)
            if len(data) <= size:
                return data
            chunks = [data]  # it grew since the scan: read to the end
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def record(self) -> dict[str, tuple[Signature, str]]:
        """Signatures and hashes of every file, for the next build's state."""
        previous, record = self.previous, {}
        for rel, sig in self.signatures.items():
            if sig is None:  # never read: stat it now
                sig = self.signatures[rel] = _signature(os.stat(os.path.join(self._root, rel)))
            prev = previous.get(rel)
            record[rel] = prev if prev is not None and prev[0] is sig else (sig, self.sha(rel))
        return record

    def update(self, rel: str, data: bytes) -> None:
        """Record a file the build itself just wrote (a generated component output)."""
        if rel not in self.signatures:
            self._sorted = None
        self.signatures[rel] = _signature(os.stat(self.root / rel))
        self._shas[rel] = bytes_sha(data)  # its bytes are not kept: the build holds the output

    def add(self, rel: str) -> None:
        """Also track a file outside the input folders (e.g. a site's own material schema)."""
        self._sorted = None
        try:
            self.signatures[rel] = _signature(os.stat(self.root / rel))
        except FileNotFoundError:
            pass
