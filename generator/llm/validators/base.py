"""What every validator shares: field selection, quoting, and the error type that names its validator."""

from __future__ import annotations

import re
from typing import Any, Iterator

FIELD = re.compile(r"^[A-Za-z_][\w-]*(?:\[\])?(?:\.[A-Za-z_][\w-]*(?:\[\])?)*$")


class Rejection(str):
    """An error message that knows which validator (or "json", "schema") produced it; it is a
    plain string to everything that shows or feeds it back, so reports can count by validator."""

    validator: str

    def __new__(cls, message: str, validator: str) -> "Rejection":
        self = super().__new__(cls, message)
        self.validator = validator
        return self

    def __reduce__(self):  # pickles (worker processes) keep the validator
        return (Rejection, (str(self), self.validator))


def rejected_by(errors: list[str]) -> list[str]:
    """The validators that rejected an answer, each once, in order (untagged errors, such as a
    provider's own refusal of an answer, name none)."""
    return list(dict.fromkeys(e.validator for e in errors if isinstance(e, Rejection)))


def select(output: Any, field: str) -> tuple[list[tuple[str, Any]], list[str]]:
    """(path, value) for every node `field` selects, and errors for missing parts."""
    nodes: list[tuple[str, Any]] = [("", output)]
    errors: list[str] = []
    for seg in field.split("."):
        each = seg.endswith("[]")
        key = seg[:-2] if each else seg
        nxt: list[tuple[str, Any]] = []
        for path, node in nodes:
            p = f"{path}.{key}" if path else key
            if not isinstance(node, dict) or key not in node:
                errors.append(f"{p}: missing")
                continue
            value = node[key]
            if each:
                if not isinstance(value, list):
                    errors.append(f"{p}: expected a list")
                    continue
                nxt.extend((f"{p}[{i}]", v) for i, v in enumerate(value))
            else:
                nxt.append((p, value))
        nodes = nxt
    return nodes, errors


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield (path or "(output)"), node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from strings(v, f"{path}[{i}]")


def texts(output: dict, spec: dict) -> tuple[list[tuple[str, str]], list[str]]:
    """The strings a text validator looks at: its field's (strings inside it), or all of them."""
    if "field" not in spec:
        return list(strings(output)), []
    nodes, errors = select(output, spec["field"])
    found: list[tuple[str, str]] = []
    for path, value in nodes:
        found.extend(strings(value, path))
    return found, errors


def quote(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def own_texts(material: dict, facts: Any) -> list[str]:
    """What this material's prompt may have shown the model besides the numbers: every string of
    its data and of its category, and the site's title and description."""
    found = [s for _, s in strings(material)]
    if facts is not None:
        found.extend(facts.category_texts(material.get("category")))
        found.extend(facts.site_texts)
    return found
