"""YAML reading that reports where things are: file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import Problem

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class YamlSyntaxError(Exception):
    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def parse(text: str, rel: str) -> Any:
    """Parse YAML text; a syntax error becomes a Problem naming the file and line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlSyntaxError(Problem(rel, f"invalid YAML: {reason}", line)) from None


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def line_of(text: str, path: Iterable[Any]) -> int | None:
    """The 1-based line of the node at `path` (keys and list indexes) in YAML `text`.

    Only called when reporting a problem, so composing the node tree again is fine. Falls back to
    the nearest existing parent.
    """
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
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
