"""Producers of LLM components: a local-first provider chain behind a content-hash disk cache,
with validated structured output (SPEC §3, §4).

    settings = LLMSettings.from_config(config.llm, os.environ, chain_override=cli_chain)
    with AnswerCache(root / ".cache" / "llm") as cache:
        report = produce_sync(requests, settings, cache, on_answer, Progress(enabled=not quiet))

Importing this package imports neither `ollama` nor `groq`: a provider's SDK is imported when
the provider is first needed (a cache miss that reaches it).
"""

from .cache import AnswerCache
from .chain import LLMSession, check_health, check_health_async, produce, produce_sync
from .progress import Progress
from .report import ProduceReport, ProviderStats
from .settings import LLM_SETTINGS_SCHEMA, PROVIDER_NAMES, LLMSettings, ProviderSettings
from .types import Answer, LLMRequest
from .validators import VALIDATOR_TYPES, validate_output, validate_validator_specs

__all__ = [
    "LLM_SETTINGS_SCHEMA", "PROVIDER_NAMES", "VALIDATOR_TYPES",
    "Answer", "AnswerCache", "LLMRequest", "LLMSession", "LLMSettings", "ProduceReport", "Progress",
    "ProviderSettings", "ProviderStats",
    "check_health", "check_health_async", "produce", "produce_sync", "validate_output",
    "validate_validator_specs",
]
