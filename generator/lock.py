"""One build at a time per site: a second build waits for the first, then refuses clearly."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import SiteLocked

LOCK_FILE = "build.lock"


@contextmanager
def site_lock(cache_dir: Path, wait_seconds: float = 60.0, say: Callable[[str], None] = lambda _: None,
              poll: float = 0.05) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    say("another build of this site is running; waiting for it to finish...")
                    told = True
                if time.monotonic() >= deadline:
                    raise SiteLocked(f"another build of this site is still running after {wait_seconds:.0f} s "
                                     f"(lock: {cache_dir / LOCK_FILE}); try again when it is done") from None
                time.sleep(poll)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
