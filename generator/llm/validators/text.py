"""The text validators: length, count, pattern, the material's name, placeholders, preambles."""

from __future__ import annotations

import re

from .base import quote as _quote
from .base import select as _select
from .base import strings as _strings
from .base import texts as _texts


def _bounds(n: int, spec: dict, noun: str) -> str | None:
    if "exact" in spec and n != spec["exact"]:
        return f"has {n} {noun}, expected exactly {spec['exact']}"
    if "min" in spec and n < spec["min"]:
        return f"has {n} {noun}, expected at least {spec['min']}"
    if "max" in spec and n > spec["max"]:
        return f"has {n} {noun}, expected at most {spec['max']}"
    return None


def _v_length(output: dict, spec: dict, material: dict) -> list[str]:
    if "field" in spec:
        nodes, errors = _select(output, spec["field"])
        for path, value in nodes:
            if not isinstance(value, str):
                errors.append(f"{path}: expected a string, got {type(value).__name__}")
        items = [(p, v) for p, v in nodes if isinstance(v, str)]
    else:
        items, errors = list(_strings(output)), []
    words = spec["type"] == "words"
    for path, text in items:
        n = len(text.split()) if words else len(text)
        problem = _bounds(n, spec, "words" if words else "characters")
        if problem:
            errors.append(f"{path}: {problem}")
    return errors


def _v_count(output: dict, spec: dict, material: dict) -> list[str]:
    nodes, errors = _select(output, spec["field"])
    for path, value in nodes:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            continue
        problem = _bounds(len(value), spec, "items")
        if problem:
            errors.append(f"{path}: {problem}")
    return errors


def _v_pattern(output: dict, spec: dict, material: dict) -> list[str]:
    rx = re.compile(spec["regex"])
    texts, errors = _texts(output, spec)
    for path, text in texts:
        if not rx.search(text):
            why = spec.get("message") or f"does not match the pattern {spec['regex']}"
            errors.append(f"{path}: {_quote(text)} {why}")
    return errors


def _v_mentions_name(output: dict, spec: dict, material: dict) -> list[str]:
    name = str(material.get("name") or "").strip()
    if not name:
        return []
    texts, errors = _texts(output, spec)
    if errors:
        return errors
    if not any(name.casefold() in " ".join(t.split()).casefold() for _, t in texts):
        where = spec.get("field") or "(output)"
        return [f"{where}: must mention the material name {name!r}"]
    return []


_PLACEHOLDERS = [
    re.compile(r"\b(?:TBD|TBA|TODO|FIXME|XXX+)\b"),
    re.compile(r"\blorem\b", re.I),
    re.compile(r"\bplaceholder\b", re.I),
    re.compile(r"\[[^\[\]\n]{0,120}\]"),  # [anything in brackets]
    re.compile(r"\{\{.*?\}\}|\{\{|\}\}|\{%|%\}", re.S),  # template syntax
    re.compile(r"<(?:insert|your|name|material)[^<>]{0,40}>", re.I),
]


def _v_no_placeholders(output: dict, spec: dict, material: dict) -> list[str]:
    texts, errors = _texts(output, spec)
    for path, text in texts:
        for rx in _PLACEHOLDERS:
            m = rx.search(text)
            if m:
                errors.append(f"{path}: contains a placeholder {_quote(m.group(0), 40)}; write the real text")
                break
    return errors


_PREAMBLE = re.compile(
    r"^\W*(?:sure\b|of course\b|certainly\b|absolutely[!,]|here(?:'s|’s|\s+is|\s+are)\b|as an ai\b"
    r"|as a language model\b|i(?:'m| am) sorry\b|i can(?:'t|not)\b|okay[,!]|great question\b)",
    re.I)


def _v_no_preamble(output: dict, spec: dict, material: dict) -> list[str]:
    texts, errors = _texts(output, spec)
    for path, text in texts:
        m = _PREAMBLE.match(text)
        if m:
            errors.append(f"{path}: starts with chatty preamble {_quote(m.group(0).strip(), 30)}; "
                          f"give only the content")
    return errors
