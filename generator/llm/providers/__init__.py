"""Providers behind one interface. SDKs are imported only when a provider is built, so a build
with nothing to generate never imports `ollama` or `groq`."""

from __future__ import annotations

from ..settings import LLMSettings
from .base import (Completion, InvalidGeneration, ModeRefused, Provider, ProviderError,
                   ProviderUnavailable, RateLimited)

__all__ = ["Completion", "InvalidGeneration", "ModeRefused", "Provider", "ProviderError",
           "ProviderUnavailable", "RateLimited", "build_provider"]


def build_provider(name: str, settings: LLMSettings) -> Provider:
    conf = settings.provider(name)
    if name == "ollama":
        from .ollama import OllamaProvider
        return OllamaProvider(conf)
    if name == "groq":
        from .groq import GroqProvider
        return GroqProvider(conf)
    if name == "openai":
        from .openai import OpenAIProvider
        return OpenAIProvider(conf)
    if name == "template":
        from .template import TemplateProvider
        return TemplateProvider(conf)
    raise ValueError(f"unknown provider {name!r}")
