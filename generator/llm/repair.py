"""Repair that can succeed: what is wrong with an answer (every check at once), and a retry that
differs from the attempt it repairs (another seed, a hotter temperature, a shorter answer when
the last one was cut off)."""

from __future__ import annotations

from typing import Sequence

from .structured import extract_json
from .validators import parse_answer, validate_output

REPAIR_TEXT_LIMIT = 4000
MAX_REPAIR_TEMPERATURE = 1.0
DEFAULT_TEMPERATURE = 0.7  # what most servers sample at when the component sets none


def answer_problems(text: str, schema: dict, validators: Sequence[dict], material: dict, *,
                    extract: bool = False) -> tuple[dict | None, list[str]]:
    """(output, errors): the schema's errors and the content validators' together, so one repair
    prompt names everything (content checks run even when the shape is wrong). `extract`: the
    answer is free text (text mode): take the JSON object out of it first."""
    output, errors = parse_answer(extract_json(text) if extract else text)
    if output is None:
        return None, errors
    shape = validate_output(output, schema, (), material)
    content = validate_output(output, {}, validators, material) if validators else []
    return output, list(dict.fromkeys(shape + content))


def attempt_params(params: dict, attempt: int, temperature_step: float) -> dict:
    """The sampling parameters of attempt `attempt` (0 = the component's own): each retry takes
    the next seed and a hotter temperature, so it does not repeat the answer it repairs."""
    if attempt == 0:
        return dict(params)
    out = dict(params)
    out["seed"] = int(params.get("seed", 0) or 0) + attempt
    base = float(params.get("temperature", DEFAULT_TEMPERATURE))
    out["temperature"] = round(min(max(base, MAX_REPAIR_TEMPERATURE), base + temperature_step * attempt), 3)
    return out


def cut_off_error(params: dict) -> str:
    limit = params.get("max_tokens")
    return (f"the answer was cut off at the token limit (finish_reason=length"
            f"{f', max_tokens={limit}' if limit else ''})")


def repair_messages(original: Sequence[dict], text: str, errors: Sequence[str], *,
                    cut_off: bool = False) -> list[dict]:
    """The original conversation, the rejected answer, and everything that was wrong with it."""
    msgs = [dict(m) for m in original]
    if text and text.strip():
        msgs.append({"role": "assistant", "content": text[:REPAIR_TEXT_LIMIT]})
    listed = "\n".join(f"- {e}" for e in list(errors)[:16])
    if cut_off:
        ask = ("\nWrite a SHORTER answer: keep every required field, use fewer words in each (stay near "
               "the lower word limits), and close the JSON object.")
    else:
        ask = "\nFix every point above; the rules of the first message still apply."
    msgs.append({"role": "user", "content": (
        "Your previous answer was rejected:\n" + listed + ask +
        "\nReply with the corrected JSON object only, matching the schema, with no other text.")})
    return msgs
