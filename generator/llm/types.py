"""The data the build engine exchanges with the LLM package."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class LLMRequest:
    """One LLM component of one material, ready to produce."""

    key: str  # scheme-prefixed content hash (computed by the caller): the cache key and batch custom_id
    component: str  # "caption"
    slug: str  # material slug
    messages: tuple[dict, ...]  # ({"role": "system", ...}, {"role": "user", ...})
    schema: dict  # JSON Schema of the output object
    params: dict  # {"temperature": 0.4, "max_tokens": 400, "seed": 7}, any may be absent
    models: dict  # per-provider model override, e.g. {"groq": "llama-3.3-70b-versatile"}
    validators: tuple[dict, ...]  # declarative validators (see validators.py)
    material: dict  # the full material data (grounded_numbers, mentions_name)
    offline: Callable[[], str] | None = None  # template tier: JSON text of the output; None = no template
    fresh: bool = False  # skip the cache read (site regen); the new answer is still stored

    def __hash__(self) -> int:  # the dict fields are not hashable; the key identifies the request
        return hash((self.key, self.component, self.slug))

    @property
    def label(self) -> str:
        return f"{self.component}/{self.slug}"


@dataclass(frozen=True)
class Answer:
    """A valid, complete output and where it came from."""

    output: dict  # passed the schema and the validators
    provider: str  # "ollama" | "groq" | "openai" | "template"
    model: str  # model that answered ("template" for the template tier)
    usage: dict  # {"prompt_tokens": int, "completion_tokens": int} of the accepted call
    from_cache: bool = False


@dataclass(frozen=True)
class TierRecord:
    """Which tier of the chain wrote a component, and why each earlier tier was left."""

    key: str
    provider: str  # "" when no tier could write it
    model: str
    left: tuple[str, ...] = ()  # "openai: HTTP 500: Input should be 'text' or 'json_object'", in chain order

    def describe(self) -> str:
        who = f"{self.provider} ({self.model})" if self.provider and self.provider != "template" else (
            self.provider or "nothing")
        return who + (f" after {'; '.join(self.left)}" if self.left else "")
