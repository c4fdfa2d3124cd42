"""YAML reading that reports where things are: file, line and field.

Reading uses yaml-rs (Rust, about 10x faster than PyYAML's C loader, which matters when a cold
build reads 50,000 files) with YAML 1.2 core-schema semantics: `yes`/`no`/`on`/`off` are
strings, `1e3` is a number, dates stay strings (JSON Schema has no date type) and a duplicate
key is an error. Writing, and finding the line of a field when reporting a problem, use PyYAML,
imported only then; the dumper quotes every string that YAML 1.2 would read as something else,
so what we write reads back unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import yaml_rs

from .errors import Problem

_LINE_RE = re.compile(r"at line (\d+)")
_DUPLICATE_RE = re.compile(r"duplicate mapping key: '?(.*?)'?$")


class YamlSyntaxError(Exception):
    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def parse(text: str, rel: str) -> Any:
    """Parse YAML text; a syntax error becomes a Problem naming the file and line."""
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first key
    if not text.strip():
        return None  # an empty document, as PyYAML reads it
    try:
        return yaml_rs.loads(text, parse_datetime=False)
    except yaml_rs.YAMLDecodeError as exc:
        message = str(exc).strip()
        lines = [l for l in message.splitlines() if l.strip() and not re.match(r"^\s*(\d+\s*)?\|", l)]
        reason = lines[-1].strip() if lines else "not valid YAML"
        found = _LINE_RE.search(message)
        line = int(found.group(1)) if found else None
        duplicate = _DUPLICATE_RE.search(message)
        if duplicate and line is None:
            line = _duplicate_key_line(text, duplicate.group(1))
        if reason.startswith("YAML parse error"):
            reason = "not valid YAML"
        raise YamlSyntaxError(Problem(rel, f"invalid YAML: {reason}", line)) from None


def _pyyaml() -> Any:
    import yaml

    return yaml


def _compose(text: str) -> Any:
    yaml = _pyyaml()
    try:
        return yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None


def _duplicate_key_line(text: str, key: str) -> int | None:
    """The line of the second occurrence of `key` in any mapping (PyYAML keeps duplicates)."""
    yaml = _pyyaml()
    todo = [_compose(text)]
    while todo:
        node = todo.pop()
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, value_node in node.value:
                if key_node.value == key and key in seen:
                    return key_node.start_mark.line + 1
                seen.add(key_node.value)
                todo.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
    return None


# Plain scalars YAML 1.2's core schema reads as numbers but YAML 1.1 (PyYAML's resolver) reads
# as strings: the dumper must quote them.
_CORE_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")
_CORE_INT = re.compile(r"^[-+]?[0-9]+$|^0o[0-7]+$|^0x[0-9a-fA-F]+$")


def _dumper() -> Any:
    yaml = _pyyaml()
    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc, valid-type]
        pass

    Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _CORE_FLOAT, list("-+.0123456789"))
    Dumper.add_implicit_resolver("tag:yaml.org,2002:int", _CORE_INT, list("-+0123456789"))
    return Dumper


def dump(data: Any) -> str:
    return _pyyaml().dump(data, Dumper=_dumper(), sort_keys=False, allow_unicode=True, width=100)


def line_of(text: str, path: Iterable[Any]) -> int | None:
    """The 1-based line of the node at `path` (keys and list indexes) in YAML `text`.

    Only called when reporting a problem, so composing the node tree again is fine. Falls back to
    the nearest existing parent.
    """
    yaml = _pyyaml()
    node = _compose(text)
    line = node.start_mark.line + 1 if node is not None else None
    for step in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(step):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")
