"""Parsing and validation of LLM answers (SPEC §4.3).

An answer is accepted only if it parses as a JSON object, passes the component's JSON Schema
(Draft 2020-12) and every declarative validator of the component:

    - {type: words, field: before, min: 25, max: 70}         # whitespace-separated words
    - {type: chars, field: description, min: 80, max: 158}   # characters
    - {type: count, field: bullets, exact: 4}                # list length: exact, or min/max
    - {type: pattern, field: "tags[]", regex: "^[a-z]+$"}    # re.search; optional `message`
    - {type: mentions_name, field: title}                    # contains material["name"] (any case)
    - {type: no_placeholders}                                # TBD, TODO, FIXME, XXX, lorem, [..], {{ }}, {% %}
    - {type: no_preamble}                                    # "Sure", "Of course", "Here is", "As an AI"...
    - {type: grounded_numbers}                               # numbers with units match the material data

`field` is a dotted path into the output; `x[]` means each item of list `x` (`faq[].answer` works).
Without `field`, a validator applies to every string of the output (`count` requires a field).

Every error is a human-readable string that starts with the field it is about: it is shown to the
user and fed back to the model in the repair prompt.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

__all__ = ["VALIDATOR_TYPES", "parse_answer", "validate_output", "validate_validator_specs",
           "check_answer"]

# ----------------------------------------------------------------------------------------------
# Spec checking
# ----------------------------------------------------------------------------------------------

_FIELD = re.compile(r"^[A-Za-z_][\w-]*(?:\[\])?(?:\.[A-Za-z_][\w-]*(?:\[\])?)*$")

# type -> (required keys, optional keys)
VALIDATOR_TYPES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "words": (frozenset(), frozenset({"field", "min", "max"})),
    "chars": (frozenset(), frozenset({"field", "min", "max"})),
    "count": (frozenset({"field"}), frozenset({"exact", "min", "max"})),
    "pattern": (frozenset({"regex"}), frozenset({"field", "message"})),
    "mentions_name": (frozenset(), frozenset({"field"})),
    "no_placeholders": (frozenset(), frozenset({"field"})),
    "no_preamble": (frozenset(), frozenset({"field"})),
    "grounded_numbers": (frozenset(), frozenset({"field", "tolerance"})),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_validator_specs(specs: Any) -> list[str]:
    """Problems with a component's `validators:` list, one message each ([] = fine)."""
    if specs is None:
        return []
    if not isinstance(specs, (list, tuple)):
        return ["validators must be a list of mappings"]
    out: list[str] = []
    for i, spec in enumerate(specs):
        where = f"validators[{i}]"
        if not isinstance(spec, dict):
            out.append(f"{where}: must be a mapping with a `type`")
            continue
        kind = spec.get("type")
        if kind not in VALIDATOR_TYPES:
            out.append(f"{where}: unknown validator type {kind!r} (known: {', '.join(VALIDATOR_TYPES)})")
            continue
        where = f"{where} ({kind})"
        required, optional = VALIDATOR_TYPES[kind]
        for key in sorted(required - spec.keys()):
            out.append(f"{where}: missing required key {key!r}")
        for key in sorted(spec.keys() - required - optional - {"type"}):
            out.append(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(required | optional))})")
        if "field" in spec and (not isinstance(spec["field"], str) or not _FIELD.match(spec["field"])):
            out.append(f"{where}: field must be a path like 'title', 'tags[]' or 'faq[].answer', "
                       f"got {spec['field']!r}")
        bounds = [k for k in ("exact", "min", "max") if k in spec]
        for key in bounds:
            if not _is_int(spec[key]) or spec[key] < 0:
                out.append(f"{where}: {key} must be a non-negative integer, got {spec[key]!r}")
        if kind in ("words", "chars", "count") and not bounds:
            out.append(f"{where}: give {'exact, ' if kind == 'count' else ''}min and/or max")
        if "exact" in spec and ("min" in spec or "max" in spec):
            out.append(f"{where}: exact excludes min/max")
        if (_is_int(spec.get("min")) and _is_int(spec.get("max")) and spec["min"] > spec["max"]):
            out.append(f"{where}: min {spec['min']} is greater than max {spec['max']}")
        if kind == "pattern" and "regex" in spec:
            if not isinstance(spec["regex"], str):
                out.append(f"{where}: regex must be a string")
            else:
                try:
                    re.compile(spec["regex"])
                except re.error as e:
                    out.append(f"{where}: invalid regex {spec['regex']!r}: {e}")
        if "message" in spec and not isinstance(spec["message"], str):
            out.append(f"{where}: message must be a string")
        if "tolerance" in spec and (not isinstance(spec["tolerance"], (int, float))
                                    or isinstance(spec["tolerance"], bool)
                                    or not 0 <= spec["tolerance"] < 1):
            out.append(f"{where}: tolerance must be a number in [0, 1), e.g. 0.005 for 0.5 %")
    return out


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\r?\n(.*?)\r?\n?\s*```\s*$", re.S)


def parse_answer(text: str) -> tuple[dict | None, list[str]]:
    """The answer's JSON object (a ```json fence is stripped), or None and the reason."""
    if text is None or not text.strip():
        return None, ["the answer was empty; reply with one JSON object"]
    m = _FENCE.match(text)
    body = m.group(1) if m else text
    try:
        data = json.loads(body)
    except ValueError as e:
        return None, [f"the answer is not valid JSON ({e}); reply with one JSON object and nothing else"]
    if not isinstance(data, dict):
        return None, [f"the answer must be a JSON object, got a JSON {type(data).__name__}"]
    return data, []


# ----------------------------------------------------------------------------------------------
# Field selection
# ----------------------------------------------------------------------------------------------


def _select(output: Any, field: str) -> tuple[list[tuple[str, Any]], list[str]]:
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


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield (path or "(output)"), node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")


def _texts(output: dict, spec: dict) -> tuple[list[tuple[str, str]], list[str]]:
    """The strings a text validator looks at: its field's (strings inside it), or all of them."""
    if "field" not in spec:
        return list(_strings(output)), []
    nodes, errors = _select(output, spec["field"])
    texts: list[tuple[str, str]] = []
    for path, value in nodes:
        texts.extend(_strings(value, path))
    return texts, errors


def _quote(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


# ----------------------------------------------------------------------------------------------
# The validators
# ----------------------------------------------------------------------------------------------


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


# ---- grounded numbers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    dim: str
    factor: float = 1.0  # to the dimension's base unit
    offset: float = 0.0  # base = value * factor + offset (temperatures)


def _canon(unit: str) -> str:
    u = unit.strip()
    for a, b in (("μ", "µ"), ("ºC", "°C"), ("℃", "°C"), ("⁻¹", "-1"), ("⁻²", "-2"), ("⁻³", "-3"),
                 ("²", "2"), ("³", "3"), ("^", ""), ("⋅", "·"), ("*", "·"), ("•", "·")):
        u = u.replace(a, b)
    return re.sub(r"\s+", "", u)


def _unit_table() -> tuple[dict[str, _Unit], list[str]]:
    """canonical spelling -> unit, and every textual spelling (for the number+unit regex)."""
    micro = ("µ", "μ", "u")
    base: list[tuple[list[str], _Unit]] = [
        (["nm"], _Unit("length", 1e-9)), (["µm", "micron", "microns"], _Unit("length", 1e-6)),
        (["mm"], _Unit("length", 1e-3)), (["cm"], _Unit("length", 1e-2)),
        (["fs"], _Unit("time", 1e-15)), (["ps"], _Unit("time", 1e-12)), (["ns"], _Unit("time", 1e-9)),
        (["µs"], _Unit("time", 1e-6)), (["ms"], _Unit("time", 1e-3)),
        (["J/cm²", "J cm⁻²", "J·cm⁻²"], _Unit("fluence", 1e4)),
        (["mJ/cm²", "mJ cm⁻²"], _Unit("fluence", 10.0)), (["J/m²"], _Unit("fluence", 1.0)),
        (["W/cm²"], _Unit("irradiance", 1e4)), (["kW/cm²"], _Unit("irradiance", 1e7)),
        (["MW/cm²"], _Unit("irradiance", 1e10)), (["GW/cm²"], _Unit("irradiance", 1e13)),
        (["J"], _Unit("energy", 1.0)), (["mJ"], _Unit("energy", 1e-3)), (["µJ"], _Unit("energy", 1e-6)),
        (["kJ"], _Unit("energy", 1e3)),
        (["eV"], _Unit("electronvolt", 1.0)), (["meV"], _Unit("electronvolt", 1e-3)),
        (["W"], _Unit("power", 1.0)), (["mW"], _Unit("power", 1e-3)), (["kW"], _Unit("power", 1e3)),
        (["MW"], _Unit("power", 1e6)),
        (["Hz"], _Unit("frequency", 1.0)), (["kHz"], _Unit("frequency", 1e3)),
        (["MHz"], _Unit("frequency", 1e6)), (["GHz"], _Unit("frequency", 1e9)),
        (["g/cm³", "g cm⁻³", "g·cm⁻³", "g/cc"], _Unit("density", 1000.0)),
        (["kg/m³", "kg m⁻³", "kg·m⁻³"], _Unit("density", 1.0)),
        (["Pa"], _Unit("pressure", 1.0)), (["kPa"], _Unit("pressure", 1e3)),
        (["MPa"], _Unit("pressure", 1e6)), (["GPa"], _Unit("pressure", 1e9)),
        (["W/(m·K)", "W/m·K", "W/mK", "W/(mK)", "W/m/K", "W/(m-K)", "W/m-K", "W m⁻¹ K⁻¹", "W·m⁻¹·K⁻¹",
          "W/(m K)", "W/m K"], _Unit("thermal_conductivity", 1.0)),
        (["J/(g·K)", "J/g·K", "J/gK", "J/(gK)", "J/g/K", "J/(g-K)", "J/g-K", "J/(g K)", "J g⁻¹ K⁻¹",
          "J·g⁻¹·K⁻¹", "kJ/(kg·K)", "kJ/kg·K", "kJ/kgK", "kJ/(kg K)", "kJ/kg/K"], _Unit("specific_heat", 1000.0)),
        (["J/(kg·K)", "J/kg·K", "J/kgK", "J/(kgK)", "J/kg/K", "J/(kg-K)", "J/kg-K", "J/(kg K)",
          "J kg⁻¹ K⁻¹", "J·kg⁻¹·K⁻¹"], _Unit("specific_heat", 1.0)),
        (["°C", "ºC", "℃", "degC"], _Unit("temperature", 1.0, 273.15)),
        (["K"], _Unit("temperature", 1.0, 0.0)),
        (["°F", "ºF"], _Unit("temperature", 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0)),
        (["%"], _Unit("percent", 1.0)),
        (["HB", "HBW", "HBS"], _Unit("hardness_brinell")), (["HV"], _Unit("hardness_vickers")),
        (["HRC"], _Unit("hardness_rockwell_c")), (["HRB"], _Unit("hardness_rockwell_b")),
        (["HK"], _Unit("hardness_knoop")), (["Mohs"], _Unit("hardness_mohs")),
        (["mm/s"], _Unit("speed", 1e-3)), (["m/s"], _Unit("speed", 1.0)),
    ]
    table: dict[str, _Unit] = {}
    spellings: set[str] = set()
    for names, unit in base:
        for name in names:
            variants = {name}
            if "µ" in name:
                variants |= {name.replace("µ", m) for m in micro}
            for sup, plain in (("²", ("2", "^2")), ("³", ("3", "^3"))):
                for v in list(variants):
                    if sup in v:
                        variants |= {v.replace(sup, p) for p in plain}
            for v in list(variants):
                if "·" in v:
                    variants |= {v.replace("·", d) for d in ("⋅", "*", " ", "-", ".")}
            for v in variants:
                spellings.add(v)
                table.setdefault(_canon(v), unit)
    return table, sorted(spellings, key=len, reverse=True)


_UNITS, _SPELLINGS = _unit_table()
_UNIT_RX = "(?:" + "|".join(re.escape(s) for s in _SPELLINGS) + ")"
_NUM_RX = r"(?<![\w.])(?:[-−](?=\d))?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_SP = r"[ \t\u00a0\u2009\u202f]?"
_END = r"(?![\w/²³^µμ°]|-[A-Za-z])"
_SINGLE = re.compile(rf"(?P<a>{_NUM_RX}){_SP}-?(?P<unit>{_UNIT_RX}){_END}")
_RANGE = re.compile(
    rf"(?i:\bbetween\s+)?(?P<a>{_NUM_RX})(?:{_SP}(?P<ua>{_UNIT_RX}))?\s*"
    rf"(?P<sep>–|—|‑|-|(?i:\bto\b|\band\b|\bor\b)|±|\+/-)\s*"
    rf"(?P<b>{_NUM_RX}){_SP}-?(?P<unit>{_UNIT_RX}){_END}")


@dataclass(frozen=True)
class _Quantity:
    path: str
    unit: _Unit
    unit_text: str
    value: float | None = None
    lo: float | None = None
    hi: float | None = None

    def describe(self) -> str:
        if self.value is not None:
            return f"{self.path} {_fmt(self.value)} {self.unit_text}"
        return f"{self.path} {_fmt(self.lo)}–{_fmt(self.hi)} {self.unit_text}"


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{x:g}"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _lookup_unit(text: str) -> _Unit:
    return _UNITS.get(_canon(text)) or _Unit("unit:" + _canon(text))


def material_quantities(material: Any) -> list[_Quantity]:
    """Every {value, unit} / {min, max, unit} mapping anywhere in the material's data."""
    out: list[_Quantity] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            unit = node.get("unit")
            if isinstance(unit, str) and unit.strip():
                u = _lookup_unit(unit)
                value, lo, hi = _num(node.get("value")), _num(node.get("min")), _num(node.get("max"))
                if value is not None:
                    out.append(_Quantity(path, u, unit.strip(), value=value))
                if lo is not None or hi is not None:
                    out.append(_Quantity(path, u, unit.strip(), lo=lo if lo is not None else hi,
                                         hi=hi if hi is not None else lo))
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(material, "")
    return out


def _parse_num(s: str) -> tuple[float, int]:
    s = s.replace("−", "-").replace(",", "")
    decimals = len(s.split(".", 1)[1]) if "." in s else 0
    return float(s), decimals


def _convert(x: float, src: _Unit, dst: _Unit) -> float:
    return ((x * src.factor + src.offset) - dst.offset) / dst.factor


def _matches(x: float, decimals: int, unit: _Unit, q: _Quantity, tol: float) -> bool:
    def close(v: float) -> bool:
        if math.isclose(x, v, rel_tol=tol, abs_tol=1e-12):
            return True
        return abs(round(v, decimals) - x) <= 1e-9 * max(1.0, abs(x))  # same printed value: 2.7 == 2.70

    if q.value is not None:
        return close(_convert(q.value, q.unit, unit))
    lo, hi = sorted((_convert(q.lo, q.unit, unit), _convert(q.hi, q.unit, unit)))  # type: ignore[arg-type]
    return (lo - tol * abs(lo)) <= x <= (hi + tol * abs(hi)) or close(lo) or close(hi)


def numbers_with_units(text: str) -> list[tuple[str, float, int, str]]:
    """(as written, value, decimals, unit) for every number with a unit, in text order; a range's
    first end takes the second end's unit; the tolerance of "x ± y unit" is not a claim of its own."""
    found: list[tuple[int, str, float, int, str]] = []
    taken: list[tuple[int, int]] = []
    for m in _RANGE.finditer(text):
        unit = m.group("unit")
        a, b = m.group("a"), m.group("b")
        ua = m.group("ua") or unit
        va, da = _parse_num(a)
        found.append((m.start("a"), f"{a} {ua}", va, da, ua))
        if m.group("sep") not in ("±", "+/-"):
            vb, db = _parse_num(b)
            found.append((m.start("b"), f"{b} {unit}", vb, db, unit))
        taken.append(m.span())
    for m in _SINGLE.finditer(text):
        if any(s <= m.start() < e for s, e in taken):
            continue
        v, d = _parse_num(m.group("a"))
        found.append((m.start(), f"{m.group('a')} {m.group('unit')}", v, d, m.group("unit")))
    return [f[1:] for f in sorted(found, key=lambda f: f[0])]


def _v_grounded_numbers(output: dict, spec: dict, material: dict) -> list[str]:
    tol = float(spec.get("tolerance", 0.005))
    quantities = material_quantities(material)
    texts, errors = _texts(output, spec)
    for path, text in texts:
        for written, value, decimals, unit_text in numbers_with_units(text):
            unit = _lookup_unit(unit_text)
            same_dim = [q for q in quantities if q.unit.dim == unit.dim]
            if any(_matches(value, decimals, unit, q, tol) for q in same_dim):
                continue
            if same_dim:
                known = "; ".join(q.describe() for q in same_dim[:6])
                errors.append(f"{path}: {written!r} does not match the material data ({known}); "
                              f"use only values from the data")
            else:
                errors.append(f"{path}: {written!r} has no counterpart in the material data "
                              f"(no quantity in {unit_text}); do not state it")
    return errors


_VALIDATORS = {
    "words": _v_length,
    "chars": _v_length,
    "count": _v_count,
    "pattern": _v_pattern,
    "mentions_name": _v_mentions_name,
    "no_placeholders": _v_no_placeholders,
    "no_preamble": _v_no_preamble,
    "grounded_numbers": _v_grounded_numbers,
}


# ----------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------


def _schema_errors(output: dict, schema: dict) -> list[str]:
    from jsonschema import Draft202012Validator

    errors = []
    for e in sorted(Draft202012Validator(schema).iter_errors(output),
                    key=lambda e: [str(p) for p in e.absolute_path]):
        path = ""
        for p in e.absolute_path:
            path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
        message = e.message if len(e.message) <= 240 else e.message[:239] + "…"
        errors.append(f"{path or '(output)'}: {message}")
    return errors


def validate_output(output: dict, schema: dict, validators: Sequence[dict], material: dict) -> list[str]:
    """Every problem with an output object: JSON Schema first, then the declarative validators
    (only when the schema passes, so their messages are about content, not shape)."""
    errors = _schema_errors(output, schema)
    if errors:
        return errors
    for spec in validators:
        errors.extend(_VALIDATORS[spec["type"]](output, spec, material))
    # The same message from two validators (e.g. the same placeholder) is said once.
    return list(dict.fromkeys(errors))


def check_answer(text: str, schema: dict, validators: Sequence[dict], material: dict) -> tuple[dict | None, list[str]]:
    """Parse and validate an answer text: (output, []) when accepted, else (None|output, errors)."""
    output, errors = parse_answer(text)
    if output is None:
        return None, errors
    errors = validate_output(output, schema, validators, material)
    return (output, []) if not errors else (output, errors)
