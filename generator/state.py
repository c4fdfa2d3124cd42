"""Build state in .cache/: file signatures, node keys and outputs, parsed files and key memos.

Recorded only after a build succeeded (lektor), written atomically; a missing, corrupt or
old-format state just means a full build. Two files: a small index that a no-op build reads
(`state.pickle`), and the memo of parsed files and keys that only a real build needs
(`memo.pickle`), so that "nothing changed" costs a stat of every input and little else.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .writer import atomic_write

STATE_FORMAT = 8
INDEX_FILE = "state.pickle"
MEMO_FILE = "memo.pickle"
_UNREADABLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError)


@dataclass
class NodeRecord:
    key: str
    outputs: tuple[str, ...]  # files in the output dir this node owns


@dataclass
class Memo:
    parse_cache: dict[str, Any] = field(default_factory=dict)  # rel -> (sha, token, parsed data)
    parts: dict[str, dict[str, str]] = field(default_factory=dict)  # component node -> key parts (why stale)
    keys: dict[str, tuple[str, dict]] = field(default_factory=dict)  # slug -> (material sig, its node keys)
    template_refs: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # jinja name -> (sig, refs)


@dataclass
class BuildState:
    files: dict[str, tuple[tuple, str]] = field(default_factory=dict)  # rel -> (stat signature, sha256)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)  # output-producing nodes
    options: str = ""  # fingerprint of the options that shape the output (base_url, output dir)
    stale_llm: tuple[str, ...] = ()  # LLM components not fresh after the last build (for --frozen)
    pending_llm: bool = False  # some LLM outputs are missing or stale: a non-frozen build must try
    warnings: tuple[str, ...] = ()  # warnings of the last build, repeated by a no-op build
    memo_id: str = ""  # which memo file belongs to this index
    config: tuple[str, Any] | None = None  # (sha of site.yaml, its validated SiteConfig)

    def owned_outputs(self) -> set[str]:
        return {out for record in self.nodes.values() for out in record.outputs}


def _load(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            fmt, value = pickle.load(fh)
    except FileNotFoundError:
        return None
    except _UNREADABLE:
        return None  # unreadable: rebuild everything
    return value if fmt == STATE_FORMAT else None


def load_state(cache_dir: Path) -> BuildState:
    state = _load(cache_dir / INDEX_FILE)
    return state if isinstance(state, BuildState) else BuildState()


def load_memo(cache_dir: Path, state: BuildState) -> Memo:
    found = _load(cache_dir / MEMO_FILE)
    if isinstance(found, tuple) and len(found) == 2 and found[0] == state.memo_id and isinstance(found[1], Memo):
        return found[1]
    return Memo()


def save_state(cache_dir: Path, state: BuildState, memo: Memo) -> None:
    """Memo first, then the index that points at it: a kill between the two loses only the memo."""
    import uuid

    state.memo_id = uuid.uuid4().hex
    atomic_write(cache_dir / MEMO_FILE, pickle.dumps((STATE_FORMAT, (state.memo_id, memo)),
                                                      protocol=pickle.HIGHEST_PROTOCOL))
    atomic_write(cache_dir / INDEX_FILE, pickle.dumps((STATE_FORMAT, state), protocol=pickle.HIGHEST_PROTOCOL))
