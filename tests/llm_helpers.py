"""A fake model that answers like a good one: the example site's reviewed outputs.

The fake servers get a responder that finds which component and material a request is for and
returns that material's committed output (which passes every validator), so tests exercise the
real chain, cache and writer end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import REPO


def committed_outputs() -> dict[tuple[str, str], dict]:
    """(component, material name) -> output object, from the repo's content/components/."""
    names = {p.stem: yaml.safe_load(p.read_text())["name"] for p in (REPO / "materials").rglob("*.yaml")}
    found = {}
    for path in (REPO / "content/components").rglob("*.yaml"):
        record = yaml.safe_load(path.read_text())
        found[(record["component"], names[record["material"]])] = record["output"]
    return found


RULES_MARKER = "\n\nAnswer with one JSON object only"  # the chain's output rules follow the prompt


def request_text(request_json: dict) -> str:
    """The user messages as the component's prompt rendered them (without the output rules)."""
    messages = request_json.get("messages") or []
    return "\n".join(m.get("content", "").split(RULES_MARKER)[0] for m in messages if m.get("role") == "user")


def component_of(request_json: dict) -> str:
    schema = request_json.get("format")
    if not isinstance(schema, dict):  # groq/openai: response_format.json_schema, or .schema (llama.cpp)
        rf = request_json.get("response_format") or {}
        schema = rf.get("json_schema", {}).get("schema") or rf.get("schema")
    if not isinstance(schema, dict):  # no schema in the request: the one stated in the user message
        user = [m.get("content", "") for m in request_json.get("messages") or [] if m.get("role") == "user"]
        stated = user[0].split(RULES_MARKER, 1)[1].split("\n")[1] if user and RULES_MARKER in user[0] else "{}"
        schema = json.loads(stated)
    keys = set((schema or {}).get("properties", {}))
    for component, marker in (("frontmatter", "summary"), ("caption", "before"), ("bullets", "bullets"),
                              ("tags", "tags")):
        if marker in keys:
            return component
    raise AssertionError(f"unrecognised request schema: {keys}")


class GoodModel:
    """A responder returning the committed output for the request's component and material."""

    def __init__(self) -> None:
        self.outputs = committed_outputs()
        self.names = sorted({name for _, name in self.outputs}, key=len, reverse=True)

    def material_of(self, request_json: dict) -> str:
        text = request_text(request_json)
        for name in self.names:  # longest first: "Aluminum 6061" before "Aluminum"
            if name in text:
                return name
        raise AssertionError("no material name in the request")

    def __call__(self, request_json: dict) -> str:
        return json.dumps(self.outputs[(component_of(request_json), self.material_of(request_json))])


def remove_outputs(root: Path) -> None:
    for path in (root / "content/components").rglob("*.yaml"):
        path.unlink()


def all_text_under(*folders: Path) -> str:
    chunks = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)
