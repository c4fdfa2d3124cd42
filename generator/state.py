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
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


STATE_FORMAT = 16
INDEX_FILE = "state.bin"
MEMO_FILE = "memo.bin"
PARTS_FILE = "parts.bin"
# marshal's format belongs to the Python version: another version just rebuilds.
_HEADER = ("site-state", STATE_FORMAT, sys.version_info[:2])
_UNREADABLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, KeyError)


@dataclass(slots=True)
class NodeRecord:
    key: str
    outputs: tuple[str, ...]  # files in the output dir this node owns


class PartsTable:
    """Key parts of fresh LLM nodes (component node id -> packed parts), in their own file.

    They only explain why a node went stale ("field 'density' changed"), so a build loads
    them when a node is stale and rewrites them only when nodes became fresh: a one-material
    edit at 10,000 materials neither reads nor writes these 40,000 entries.
    """

    def __init__(self, path: Path | None = None, entries: dict[str, str] | None = None):
        self._path = path
        self._entries = entries

    def table(self) -> dict[str, str]:
        if self._entries is None:
            payload = _read(self._path) if self._path is not None else None
            self._entries = payload[0] if payload and isinstance(payload[0], dict) else {}
        return self._entries

    def get(self, node_id: str, default: str | None = None) -> str | None:
        return self.table().get(node_id, default)

    def with_updates(self, updates: dict[str, str]) -> PartsTable | None:
        """The table with `updates` applied; None when nothing changes (keep the file)."""
        if not updates:
            return None
        table = self.table()
        if all(table.get(k) == v for k, v in updates.items()):
            return None
        return PartsTable(None, {**table, **updates})


@dataclass
class Memo:
    parse_cache: dict[str, Any] = field(default_factory=dict)  # rel -> (token, parsed data), as of state.files
    parts: PartsTable = field(default_factory=PartsTable)  # why a fresh LLM node went stale
    keys: dict[str, tuple] = field(default_factory=dict)  # slug -> (material sig, node keys, view sig, page key)
    template_refs: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # jinja name -> (sig, refs)
    global_sig: str = ""  # GraphBuilder.global_sig: what every material's keys and page depend on


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
    """A state file: the header, then each part of the payload as its own length-prefixed
    marshal record (read one at a time: at 10,000 materials the memo is 30 MB)."""
    try:
        with open(path, "rb") as fh:
            left = os.fstat(fh.fileno()).st_size
            parts = []
            while left >= 8:
                size = int.from_bytes(fh.read(8), "little")
                if size > left - 8:
                    return None  # truncated, or another format
                parts.append(marshal.loads(fh.read(size)))
                left -= 8 + size
                if len(parts) == 1 and parts[0] != _HEADER:
                    return None
    except FileNotFoundError:
        return None
    except _UNREADABLE:
        return None  # unreadable: rebuild everything
    if not parts or parts[0] != _HEADER:
        return None
    return tuple(parts[1:])


def _write(path: Path, parts: tuple) -> None:
    """Part by part: one marshal.dumps of everything held 40 MB at once."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            for part in (_HEADER, *parts):
                data = marshal.dumps(part)
                fh.write(len(data).to_bytes(8, "little"))
                fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_state(cache_dir: Path) -> BuildState:
    payload = _read(cache_dir / INDEX_FILE)
    if payload is None:
        return BuildState()
    try:
        fields = dict(payload[0])
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
        memo_id, plain, other, keys, template_refs, global_sig = payload
        if memo_id != state.memo_id:
            return Memo()
        parse_cache = pickle.loads(other)
        for rel, (token, data, is_summary) in plain.items():
            parse_cache[rel] = (token, MaterialSummary(*data) if is_summary else data)
        return Memo(parse_cache, PartsTable(cache_dir / PARTS_FILE), keys, template_refs, global_sig)
    except _UNREADABLE:
        return Memo()


def save_state(cache_dir: Path, state: BuildState, memo: Memo, parts: PartsTable | None = None) -> None:
    """Memo first, then the index that points at it: a kill between the two loses only the memo.
    `parts`: a changed parts table to write (None: the file on disk stays right)."""
    import uuid
    from dataclasses import fields

    from .content import MaterialSummary

    state.memo_id = uuid.uuid4().hex
    plain, other = {}, {}
    for rel, (token, data) in memo.parse_cache.items():
        if isinstance(data, MaterialSummary):
            plain[rel] = (token, tuple(data), True)
        elif rel.startswith("content/components/"):  # (key, hand_edited, pinned, inputs_sha256)
            plain[rel] = (token, data, False)
        else:
            other[rel] = (token, data)
    if parts is not None:  # only explains staleness: no need to tie it to this memo
        _write(cache_dir / PARTS_FILE, (parts.table(),))
    _write(cache_dir / MEMO_FILE, (state.memo_id, plain, pickle.dumps(other, protocol=pickle.HIGHEST_PROTOCOL),
                                   memo.keys, memo.template_refs, memo.global_sig))
    index = {f.name: getattr(state, f.name) for f in fields(state)}
    index["nodes"] = {node_id: (r.key, r.outputs) for node_id, r in state.nodes.items()}
    index["config"] = pickle.dumps(state.config) if state.config is not None else None
    _write(cache_dir / INDEX_FILE, (index,))
