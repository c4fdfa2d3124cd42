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
    - {type: grounded_numbers}                               # every number matches the material data
    - {type: no_foreign_entities}                            # no other material, no person not in data/
    - {type: plain_text}                                     # no HTML, handlers, javascript:, templates, links
    - {type: no_commerce}                                    # no prices or sales wording

The last six are on for every LLM component (specs.DEFAULT_VALIDATORS); `{type: X, enabled:
false}` switches one off. `field` is a dotted path into the output; `x[]` means each item of list
`x` (`faq[].answer` works). Without `field`, a validator applies to every string of the output
(`count` requires a field).

Every error is a human-readable string that starts with the field it is about: it is shown to the
user and fed back to the model in the repair prompt. It is a `Rejection`, which also names the
validator that produced it, so reports count rejections by validator.
"""

from __future__ import annotations

import json
import re
from typing import Sequence

from .base import Rejection, rejected_by
from .entities import v_no_foreign_entities
from .facts import SiteFacts
from .markup import v_no_commerce, v_plain_text
from .numbers import material_quantities, numbers_with_units, v_grounded_numbers
from .specs import DEFAULT_VALIDATORS, VALIDATOR_TYPES, effective_validators, validate_validator_specs
from .text import (_v_count, _v_length, _v_mentions_name, _v_no_placeholders, _v_no_preamble,
                   _v_pattern)

__all__ = ["DEFAULT_VALIDATORS", "VALIDATOR_TYPES", "Rejection", "SiteFacts", "check_answer",
           "effective_validators", "material_quantities", "numbers_with_units", "parse_answer",
           "rejected_by", "validate_output", "validate_validator_specs"]

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\r?\n(.*?)\r?\n?\s*```\s*$", re.S)


def parse_answer(text: str) -> tuple[dict | None, list[str]]:
    """The answer's JSON object (a ```json fence is stripped), or None and the reason."""
    if text is None or not text.strip():
        return None, [Rejection("the answer was empty; reply with one JSON object", "json")]
    m = _FENCE.match(text)
    body = m.group(1) if m else text
    try:
        data = json.loads(body)
    except ValueError as e:
        return None, [Rejection(f"the answer is not valid JSON ({e}); reply with one JSON object and nothing else",
                                "json")]
    if not isinstance(data, dict):
        return None, [Rejection(f"the answer must be a JSON object, got a JSON {type(data).__name__}", "json")]
    return data, []


_VALIDATORS = {
    "words": _v_length,
    "chars": _v_length,
    "count": _v_count,
    "pattern": _v_pattern,
    "mentions_name": _v_mentions_name,
    "no_placeholders": _v_no_placeholders,
    "no_preamble": _v_no_preamble,
    "grounded_numbers": v_grounded_numbers,
    "no_foreign_entities": v_no_foreign_entities,
    "plain_text": v_plain_text,
    "no_commerce": v_no_commerce,
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
        errors.append(Rejection(f"{path or '(output)'}: {message}", "schema"))
    return errors


def validate_output(output: dict, schema: dict, validators: Sequence[dict], material: dict) -> list[str]:
    """Every problem with an output object: JSON Schema first, then the declarative validators
    (only when the schema passes, so their messages are about content, not shape)."""
    errors = _schema_errors(output, schema)
    if errors:
        return errors
    for spec in validators:
        if spec.get("enabled", True) is False:
            continue
        kind = spec["type"]
        errors.extend(Rejection(e, kind) for e in _VALIDATORS[kind](output, spec, material))
    # The same message from two validators (e.g. the same placeholder) is said once.
    return list(dict.fromkeys(errors))


def check_answer(text: str, schema: dict, validators: Sequence[dict], material: dict) -> tuple[dict | None, list[str]]:
    """Parse and validate an answer text: (output, []) when accepted, else (None|output, errors)."""
    output, errors = parse_answer(text)
    if output is None:
        return None, errors
    errors = validate_output(output, schema, validators, material)
    return (output, []) if not errors else (output, errors)
