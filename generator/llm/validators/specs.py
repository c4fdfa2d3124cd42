"""A component's `validators:` list: checking it, and the defaults every LLM component gets."""

from __future__ import annotations

import re
from typing import Any, Sequence

from .base import FIELD

_SWITCH = frozenset({"enabled"})

# type -> (required keys, optional keys); every type also takes `enabled: false`
VALIDATOR_TYPES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "words": (frozenset(), frozenset({"field", "min", "max"})),
    "chars": (frozenset(), frozenset({"field", "min", "max"})),
    "count": (frozenset({"field"}), frozenset({"exact", "min", "max"})),
    "pattern": (frozenset({"regex"}), frozenset({"field", "message"})),
    "mentions_name": (frozenset(), frozenset({"field"})),
    "no_placeholders": (frozenset(), frozenset({"field"})),
    "no_preamble": (frozenset(), frozenset({"field"})),
    "grounded_numbers": (frozenset(), frozenset({"field", "tolerance"})),
    "no_foreign_entities": (frozenset(), frozenset({"field"})),
    "plain_text": (frozenset(), frozenset({"field"})),
    "no_commerce": (frozenset(), frozenset({"field"})),
}

# On for every LLM component unless its list says `{type: X, enabled: false}`; an entry of the
# same type in the list (e.g. with a `field` or `tolerance`) replaces the default one.
DEFAULT_VALIDATORS: tuple[str, ...] = ("no_placeholders", "no_preamble", "grounded_numbers",
                                       "no_foreign_entities", "plain_text", "no_commerce")

# The validators that look beyond the material at the site (other materials, data/ people,
# category texts): effective_validators() hands them the SiteFacts under this key.
USES_FACTS = frozenset({"grounded_numbers", "no_foreign_entities", "no_commerce"})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def effective_validators(specs: Sequence[dict] | None, facts: Any = None) -> tuple[dict, ...]:
    """The validators an LLM component's outputs must pass: its own list, then each default it
    does not name; entries with `enabled: false` are dropped (and switch their default off)."""
    specs = list(specs or ())
    named = {s.get("type") for s in specs}
    chosen = [s for s in specs if s.get("enabled", True) is not False]
    chosen += [{"type": t} for t in DEFAULT_VALIDATORS if t not in named]
    out = []
    for spec in chosen:
        spec = {k: v for k, v in spec.items() if k != "enabled"}
        if facts is not None and spec["type"] in USES_FACTS:
            spec["facts"] = facts
        out.append(spec)
    return tuple(out)


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
        optional = optional | _SWITCH
        for key in sorted(required - spec.keys()):
            out.append(f"{where}: missing required key {key!r}")
        for key in sorted(spec.keys() - required - optional - {"type"}):
            out.append(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(required | optional))})")
        if "enabled" in spec and not isinstance(spec["enabled"], bool):
            out.append(f"{where}: enabled must be true or false, got {spec['enabled']!r}")
        if spec.get("enabled", True) is False:
            continue  # switched off: its other keys need not make sense
        if "field" in spec and (not isinstance(spec["field"], str) or not FIELD.match(spec["field"])):
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
