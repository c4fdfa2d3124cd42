"""Build state in .cache/: file signatures, parsed files, node keys and outputs.

Recorded only after a build succeeded (lektor), written atomically; a missing, corrupt or
old-format state just means a full build.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .writer import atomic_write

STATE_FORMAT = 4
STATE_FILE = "state.pickle"


@dataclass
class NodeRecord:
    key: str
    outputs: tuple[str, ...]  # files in the output dir this node owns


@dataclass
class BuildState:
    files: dict[str, tuple[tuple, str]] = field(default_factory=dict)  # rel -> (stat signature, sha256)
    parse_cache: dict[str, Any] = field(default_factory=dict)  # rel -> (sha, token, parsed data)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)  # output-producing nodes
    parts: dict[str, dict[str, str]] = field(default_factory=dict)  # component node -> key parts (why stale)
    memo: dict[str, tuple[str, dict]] = field(default_factory=dict)  # slug -> (material sig, its node keys)
    options: str = ""  # fingerprint of the options that shape the output (base_url, output dir)
    stale_llm: tuple[str, ...] = ()  # LLM components stale after the last build (for --frozen)
    pending_llm: bool = False  # some LLM outputs are missing or stale: a non-frozen build must try
    warnings: tuple[str, ...] = ()  # warnings of the last build, repeated by a no-op build

    def owned_outputs(self) -> set[str]:
        return {out for record in self.nodes.values() for out in record.outputs}


def load_state(cache_dir: Path) -> BuildState:
    try:
        with open(cache_dir / STATE_FILE, "rb") as fh:
            fmt, state = pickle.load(fh)
    except FileNotFoundError:
        return BuildState()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError):
        return BuildState()  # unreadable: rebuild everything
    return state if fmt == STATE_FORMAT and isinstance(state, BuildState) else BuildState()


def save_state(cache_dir: Path, state: BuildState) -> None:
    atomic_write(cache_dir / STATE_FILE, pickle.dumps((STATE_FORMAT, state), protocol=pickle.HIGHEST_PROTOCOL))
