"""Build state in .cache/: file signatures, node keys and outputs, parsed files and key memos.

Recorded only after a build succeeded (lektor), written atomically; a missing, corrupt or
old-format state just means a full build. Two files: a small index that a no-op build reads
(`state.bin`), and the memo of parsed files and keys that only a real build needs (`memo.bin`),
so that "nothing changed" costs a stat of every input and little else.

The large tables (file signatures, material summaries, output metadata, keys) are plain tuples,
dicts and strings stored with `marshal`, several times faster than pickle at 10,000 materials;
the few values of other types (a SiteConfig, YAML data with dates) are pickled inside.
"""

from __future__ import annotations

import marshal
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .writer import atomic_write

STATE_FORMAT = 12
INDEX_FILE = "state.bin"
MEMO_FILE = "memo.bin"
# marshal's format belongs to the Python version: another version just rebuilds.
_HEADER = ("site-state", STATE_FORMAT, sys.version_info[:2])
_UNREADABLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, KeyError)


@dataclass
class NodeRecord:
    key: str
    outputs: tuple[str, ...]  # files in the output dir this node owns


@dataclass
class Memo:
    parse_cache: dict[str, Any] = field(default_factory=dict)  # rel -> (sha, token, parsed data)
    parts: dict[str, str] = field(default_factory=dict)  # component node -> packed key parts (why stale)
    keys: dict[str, tuple] = field(default_factory=dict)  # slug -> (material sig, node keys, view sig, page key)
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


def _read(path: Path) -> Any:
    try:
        header, payload = marshal.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except _UNREADABLE:
        return None  # unreadable: rebuild everything
    return payload if header == _HEADER else None


def _write(path: Path, payload: Any) -> None:
    atomic_write(path, marshal.dumps((_HEADER, payload)))


def load_state(cache_dir: Path) -> BuildState:
    payload = _read(cache_dir / INDEX_FILE)
    if payload is None:
        return BuildState()
    try:
        fields = dict(payload)
        fields["nodes"] = {node_id: NodeRecord(key, outputs) for node_id, (key, outputs) in fields["nodes"].items()}
        fields["config"] = pickle.loads(fields["config"]) if fields["config"] is not None else None
        return BuildState(**fields)
    except _UNREADABLE:
        return BuildState()


def load_memo(cache_dir: Path, state: BuildState) -> Memo:
    from .content import MaterialSummary

    payload = _read(cache_dir / MEMO_FILE)
    if payload is None:
        return Memo()
    try:
        memo_id, plain, other, parts, keys, template_refs = payload
        if memo_id != state.memo_id:
            return Memo()
        parse_cache = pickle.loads(other)
        for rel, (sha, token, data, is_summary) in plain.items():
            parse_cache[rel] = (sha, token, MaterialSummary(*data) if is_summary else data)
        return Memo(parse_cache, parts, keys, template_refs)
    except _UNREADABLE:
        return Memo()


def save_state(cache_dir: Path, state: BuildState, memo: Memo) -> None:
    """Memo first, then the index that points at it: a kill between the two loses only the memo."""
    import uuid
    from dataclasses import fields

    from .content import MaterialSummary

    state.memo_id = uuid.uuid4().hex
    plain, other = {}, {}
    for rel, (sha, token, data) in memo.parse_cache.items():
        if isinstance(data, MaterialSummary):
            plain[rel] = (sha, token, tuple(data), True)
        elif rel.startswith("content/components/"):  # (key, hand_edited, pinned, inputs_sha256)
            plain[rel] = (sha, token, data, False)
        else:
            other[rel] = (sha, token, data)
    _write(cache_dir / MEMO_FILE, (state.memo_id, plain, pickle.dumps(other, protocol=pickle.HIGHEST_PROTOCOL),
                                   memo.parts, memo.keys, memo.template_refs))
    index = {f.name: getattr(state, f.name) for f in fields(state)}
    index["nodes"] = {node_id: (r.key, r.outputs) for node_id, r in state.nodes.items()}
    index["config"] = pickle.dumps(state.config) if state.config is not None else None
    _write(cache_dir / INDEX_FILE, index)
