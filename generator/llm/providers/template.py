"""The offline tier: the component's output rendered from the material's data by its own
template. Deterministic, free, always available when the component has a template; its
provenance always says `template`. Validated like any answer."""

from __future__ import annotations

import json
from typing import Callable, Sequence

import jinja2

from ... import yamlio
from ...errors import SiteError
from ..settings import ProviderSettings
from .base import Completion, Provider, ProviderUnavailable, short, usage_of


class TemplateProvider(Provider):
    name = "template"
    repairable = False  # the same data renders the same text: a repair retry cannot help

    def __init__(self, settings: ProviderSettings):
        super().__init__(settings)

    async def health(self) -> tuple[bool, str]:
        return True, "offline templates (components without one are skipped)"

    async def complete(self, messages: Sequence[dict], schema: dict, params: dict, model: str, *,
                       name: str, offline: Callable[[], str] | None = None,
                       mode: str | None = None) -> Completion:
        if offline is None:
            raise ProviderUnavailable(f"component {name!r} has no offline template")
        try:
            text = offline()
        except (jinja2.TemplateError, SiteError) as e:
            raise ProviderUnavailable(f"offline template of {name!r} failed: {short(e, 240)}") from None
        # The template may emit YAML (a superset of JSON); hand the chain canonical JSON text.
        try:
            json.loads(text)
        except ValueError:
            try:
                data = yamlio.parse(text, "offline template output")
            except yamlio.YamlSyntaxError:
                data = None
            if isinstance(data, dict):
                text = json.dumps(data, ensure_ascii=False)
        return Completion(text=text, finish_reason="stop", usage=usage_of(0, 0), model="template")
