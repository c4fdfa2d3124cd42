"""Structured output that fits each server, and the output rules every request carries.

Modes, strongest first (a provider's ladder is in settings.py):

    json_schema         OpenAI/Groq `response_format: {type: json_schema, ...}`; Ollama `format: <schema>`
    json_object_schema  `response_format: {type: json_object, schema: ...}` (llama.cpp server: a grammar)
    json_object         `response_format: {type: json_object}`; Ollama `format: "json"`
    text                no constraint: the JSON object is extracted from the answer text

With `response_format: auto` (the default) a provider starts at its strongest mode; the first
refusal (ModeRefused) steps it down one mode for the rest of the build, with a note saying why.
An explicit mode is used as given: a refusal of it is a plain failure.

The schema and the content rules (word counts, required mentions, what not to invent) are also
written into the last user message, so a chat format that drops system messages still carries
them. They are derived from the request's schema and validators: the cache key does not change.
"""

from __future__ import annotations

import json
from typing import Sequence

from .settings import GROQ_MODES, OLLAMA_MODES, OPENAI_MODES, LLMSettings

LADDERS = {"ollama": OLLAMA_MODES, "groq": GROQ_MODES, "openai": OPENAI_MODES, "template": ("text",)}

NO_INVENTION = ("Do not invent numbers, prices, dates, people, companies or standards that are not in "
                "the data above.")


class ModeBook:
    """The structured-output mode of each provider for one build (plain data, shared by the
    produce() calls of a build through LLMSession)."""

    def __init__(self, settings: LLMSettings):
        self.settings = settings
        self.modes: dict[str, str] = {}
        self.history: dict[str, list[str]] = {}  # provider -> "json_schema refused (HTTP 500: ...)"

    def negotiated(self, name: str) -> bool:
        return self.settings.provider(name).response_format == "auto"

    def mode(self, name: str) -> str:
        if name not in self.modes:
            configured = self.settings.provider(name).response_format
            self.modes[name] = LADDERS.get(name, ("text",))[0] if configured == "auto" else configured
        return self.modes[name]

    def refused(self, name: str, sent: str, reason: str) -> str | None:
        """Step down from `sent` after a refusal: the next mode, or None when there is none (or the
        mode was configured, not negotiated). Concurrent refusals of one mode step down once."""
        ladder = LADDERS.get(name, ("text",))
        if not self.negotiated(name) or sent not in ladder or sent == ladder[-1]:
            return None
        current = self.mode(name)
        lower = ladder[ladder.index(sent) + 1]
        if ladder.index(current) <= ladder.index(sent):
            self.modes[name] = lower
            self.history.setdefault(name, []).append(f"{sent} refused ({reason})")
        return self.modes[name]

    def note(self, name: str) -> str:
        steps = "; ".join(self.history.get(name, []))
        return f"{name}: structured output {self.mode(name)} for this build" + (f" after {steps}" if steps else "")

    def used(self) -> dict[str, str]:
        return dict(self.modes)


# ---- the rules in the user message -------------------------------------------------------------


def _bounds(spec: dict, noun: str) -> str:
    if "exact" in spec:
        return f"exactly {spec['exact']} {noun}"
    if "min" in spec and "max" in spec:
        return f"{spec['min']} to {spec['max']} {noun}"
    if "min" in spec:
        return f"at least {spec['min']} {noun}"
    return f"at most {spec.get('max')} {noun}"


def _rule(spec: dict, material: dict) -> str | None:
    kind, where = spec.get("type"), spec.get("field")
    field = f"`{where}`" if where else "every text"
    if kind == "words":
        return f"{field}: {_bounds(spec, 'words')}"
    if kind == "chars":
        return f"{field}: {_bounds(spec, 'characters')}"
    if kind == "count":
        return f"{field}: {_bounds(spec, 'items')}"
    if kind == "pattern":
        return f"{field}: {spec.get('message') or 'must match the regular expression ' + str(spec.get('regex'))}"
    if kind == "mentions_name":
        name = str(material.get("name") or "").strip()
        return f"{field} must mention the material name \"{name}\"" if name else None
    if kind == "no_placeholders":
        return f"{field}: no placeholders (TBD, TODO, lorem ipsum, [brackets], {{{{ }}}})"
    if kind == "no_preamble":
        return f"{field}: start with the content itself (no \"Sure\", \"Here is\", \"As an AI\")"
    if kind == "grounded_numbers":
        return f"{field}: every number (with a unit, a price or a percentage too) only as it appears in the data"
    if kind == "no_foreign_entities":
        return f"{field}: name no other material and no person who is not in the data"
    if kind == "plain_text":
        return f"{field}: plain text only (no HTML tags, links, entities or {{{{ }}}} template syntax)"
    if kind == "no_commerce":
        return f"{field}: no prices, offers or sales wording (buy, order, discount, shipping)"
    return f"{field}: must pass the `{kind}` check" if kind else None


def output_rules(schema: dict, validators: Sequence[dict], material: dict) -> str:
    """The block appended to the user message: the schema, then one line per content rule."""
    rules = [r for r in (_rule(v, material) for v in validators) if r]
    lines = ["Answer with one JSON object only (no prose, no code fence), matching this JSON Schema:",
             json.dumps(schema, ensure_ascii=False, sort_keys=True), "Rules:"]
    lines += [f"- {r}" for r in rules]
    lines.append(f"- {NO_INVENTION}")
    return "\n".join(lines)


def with_output_rules(messages: Sequence[dict], schema: dict, validators: Sequence[dict],
                      material: dict) -> list[dict]:
    """`messages` with the output rules at the end of the last user message (or as a new one)."""
    block = output_rules(schema, validators, material)
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m.get("role") == "user":
            m["content"] = f"{m.get('content', '')}\n\n{block}"
            return out
    return [*out, {"role": "user", "content": block}]


# ---- text mode ---------------------------------------------------------------------------------


def extract_json(text: str) -> str:
    """The first JSON object in `text` (prose or a code fence around it), else `text` unchanged."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return text[start:end]
        start = text.find("{", end)
    return text
