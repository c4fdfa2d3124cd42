"""Producers of LLM components: a local-first provider chain behind a content-hash disk cache,
with validated structured output (SPEC §3, §4).

    settings = LLMSettings.from_config(config.llm, os.environ, chain_override=cli_chain)
    with AnswerCache(root / ".cache" / "llm") as cache:
        report = produce_sync(requests, settings, cache, on_answer, Progress(enabled=not quiet))

Importing this package imports neither `ollama` nor `groq`: a provider's SDK is imported when
the provider is first needed (a cache miss that reaches it). Its names are imported from their
modules on first use: a build that validates a component's settings needs two small modules,
not the chain (a tenth of a cold build of 1,000 materials).
"""

from importlib import import_module
from typing import Any

_MODULES = {
    "AnswerCache": "cache", "LLMSession": "chain", "check_health": "chain", "check_health_async": "chain",
    "produce": "chain", "produce_sync": "chain", "Progress": "progress", "ProduceReport": "report",
    "ProviderStats": "report", "LLM_SETTINGS_SCHEMA": "settings", "PROVIDER_NAMES": "settings",
    "LLMSettings": "settings", "ProviderSettings": "settings", "Answer": "types", "LLMRequest": "types",
    "TierRecord": "types",
    "VALIDATOR_TYPES": "validators", "validate_output": "validators", "validate_validator_specs": "validators",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

__all__ = [
    "LLM_SETTINGS_SCHEMA", "PROVIDER_NAMES", "VALIDATOR_TYPES",
    "Answer", "AnswerCache", "LLMRequest", "LLMSession", "LLMSettings", "ProduceReport", "Progress",
    "ProviderSettings", "ProviderStats", "TierRecord",
    "check_health", "check_health_async", "produce", "produce_sync", "validate_output",
    "validate_validator_specs",
]
