"""Validation of components/<name>/component.yaml (SPEC §2.2)."""

from __future__ import annotations

from typing import Any

from . import yamlio
from .config import validation_problems
from .errors import Problem

TEMPLATE_FILE_SUFFIXES = (".j2", ".jinja", ".html", ".txt", ".md")

COMPONENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "template"],
    "properties": {
        "kind": {"enum": ["llm", "static"]},
        "description": {"type": "string"},
        "inputs": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "depends_on": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "version": {"type": ["integer", "string"]},
        "template": {"type": "string", "minLength": 1},
        "system": {"type": "string"},
        "prompt": {"type": "string", "minLength": 1},
        "schema": {"type": "object"},
        "params": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "max_tokens": {"type": "integer", "minimum": 1},
                "seed": {"type": "integer"},
                "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        "models": {"type": "object", "additionalProperties": {"type": "string"}},
        "validators": {"type": "array", "items": {"type": "object"}},
        "offline": {"type": "string"},
    },
    "if": {"properties": {"kind": {"const": "llm"}}},
    "then": {"required": ["prompt", "schema"]},
    "else": {"not": {"anyOf": [{"required": [k]} for k in ("prompt", "schema", "validators", "offline")]}},
    "additionalProperties": False,
}


def is_template_file(value: str) -> bool:
    return value.endswith(TEMPLATE_FILE_SUFFIXES) and "\n" not in value and "{" not in value


def component_problems(data: Any, text: str, rel: str, files: dict[str, str]) -> list[Problem]:
    import jsonschema_rs

    from .llm.validators import validate_validator_specs

    if not isinstance(data, dict):
        return [Problem(rel, "component.yaml must be a mapping", 1)]
    problems = validation_problems(COMPONENT_SCHEMA, data, text, rel)
    if problems:
        return problems

    def missing_file(key: str, value: str) -> None:
        if "/" in value or "\\" in value or value.startswith("."):
            problems.append(Problem(rel, f"{key} must name a file in the component folder, got {value!r}",
                                    yamlio.line_of(text, [key]), key))
        elif value not in files:
            problems.append(Problem(rel, f"missing template file {value!r} (components/"
                                    f"{rel.split('/')[1]}/{value})", yamlio.line_of(text, [key]), key))

    missing_file("template", data["template"])
    if "offline" in data:
        missing_file("offline", data["offline"])
    for key in ("prompt", "system"):
        if isinstance(data.get(key), str) and is_template_file(data[key]):
            missing_file(key, data[key])
    if "schema" in data:
        if not jsonschema_rs.meta.is_valid(data["schema"]):  # jsonschema says why (slow to import)
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(data["schema"])
            except SchemaError as exc:
                problems.append(Problem(rel, f"schema is not a valid JSON Schema: {exc.message}",
                                        yamlio.line_of(text, ["schema"]), "schema"))
        if data["schema"].get("type", "object") != "object":
            problems.append(Problem(rel, "an llm component's output must be a JSON object (schema type: object)",
                                    yamlio.line_of(text, ["schema"]), "schema.type"))
    for message in validate_validator_specs(data.get("validators", [])):
        problems.append(Problem(rel, message, yamlio.line_of(text, ["validators"]), "validators"))
    return problems
