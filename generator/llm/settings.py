"""The `llm:` section of site.yaml, environment overrides, and the settings the chain runs with.

Mapping (SPEC §4.1):

    llm.chain                      -> LLMSettings.chain   (env SITE_LLM_CHAIN, then the CLI's --chain, win)
    llm.repair_retries             -> LLMSettings.repair_retries
    llm.repair_temperature_step    -> LLMSettings.repair_temperature_step
    llm.strict                     -> LLMSettings.strict  (the CLI's --strict also sets it)
    llm.providers.<name>.*         -> LLMSettings.providers[<name>] (ProviderSettings)
    llm.prices["provider:model"]   -> LLMSettings.prices   (USD per million tokens)
    llm.batch.*                    -> LLMSettings.batch    (BatchSettings: the Groq Batch API, SPEC §4.4)
    OLLAMA_HOST                    -> providers["ollama"].base_url (wins over llm.providers.ollama.host)
    GROQ_API_KEY / GROQ_BASE_URL   -> providers["groq"].api_key / .base_url
    OPENAI_API_KEY / OPENAI_BASE_URL -> providers["openai"].api_key / .base_url

Secrets come only from the environment: site.yaml has no key field (it would be committed).
A key is held in a `Secret`, whose repr/str never show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from ..errors import InputError, Problem

PROVIDER_NAMES = ("ollama", "groq", "openai", "template")
DEFAULT_CHAIN = ("ollama", "groq", "template")
CONFIG_FILE = "site.yaml"

_NUM_POS = {"type": "number", "exclusiveMinimum": 0}
_INT_POS = {"type": "integer", "minimum": 1}

_COMMON = {
    "model": {"type": "string", "minLength": 1},
    "timeout": _NUM_POS,
    "connect_timeout": _NUM_POS,
    "concurrency": {"type": "integer", "minimum": 1, "maximum": 256},
    "rpm": {"type": ["integer", "null"], "minimum": 1},  # null: no limit
    "tpm": {"type": ["integer", "null"], "minimum": 1},
    "period_seconds": _NUM_POS,
    "max_retry_after": {"type": "number", "minimum": 0},
    "rate_limit_retries": {"type": "integer", "minimum": 0, "maximum": 100},
    "health_timeout": _NUM_POS,  # default: `timeout` for a local server, 10 s for a remote one
    "health_retry_after": {"type": "number", "minimum": 0},  # seconds before an unhealthy one is probed again
}

# Structured-output modes, strongest first (see structured.py); "auto" negotiates down the ladder.
OPENAI_MODES = ("json_schema", "json_object_schema", "json_object", "text")
GROQ_MODES = ("json_schema", "json_object", "text")
OLLAMA_MODES = ("json_schema", "json_object", "text")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})


def _provider_schema(**extra: Any) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": {**_COMMON, **extra}}


LLM_SETTINGS_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "chain": {
            "type": "array",
            "items": {"enum": list(PROVIDER_NAMES)},
            "minItems": 1,
            "uniqueItems": True,
        },
        "repair_retries": {"type": "integer", "minimum": 0, "maximum": 10},
        "repair_temperature_step": {"type": "number", "minimum": 0, "maximum": 1},
        "strict": {"type": "boolean"},  # true: a component no model could write fails (no template fill)
        "providers": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ollama": _provider_schema(
                    host={"type": "string", "minLength": 1},
                    keep_alive={"type": ["string", "number"]},
                    response_format={"enum": ["auto", *OLLAMA_MODES]},
                ),
                "groq": _provider_schema(
                    base_url={"type": "string", "minLength": 1},
                    response_format={"enum": ["auto", *GROQ_MODES]},
                ),
                "openai": _provider_schema(
                    base_url={"type": "string", "minLength": 1},
                    response_format={"enum": ["auto", *OPENAI_MODES, "none"]},  # none = text
                ),
                "template": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"concurrency": _COMMON["concurrency"]},
                },
            },
        },
        "batch": {  # `site build --batch` (generator/llm/batch.py); every key optional
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "model": {"type": "string", "minLength": 1},
                "second_pass_model": {"type": ["string", "null"], "minLength": 1},
                "completion_window": {"type": "string", "pattern": "^[1-9][0-9]*[hd]$"},
                "discount": {"type": "number", "minimum": 0, "maximum": 1},
                "poll_interval": _NUM_POS,
                "max_poll_interval": _NUM_POS,
                "max_lines": _INT_POS,
                "max_bytes": {"type": "integer", "minimum": 1024},
            },
        },
        "prices": {
            "type": "object",
            "propertyNames": {"pattern": "^[a-z]+:.+$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["input", "output"],
                "properties": {"input": {"type": "number", "minimum": 0},
                               "output": {"type": "number", "minimum": 0}},
            },
        },
    },
}

# Defaults per provider; every key of the schema above is optional.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "ollama": {"host": "http://127.0.0.1:11434", "model": "llama3.2", "timeout": 120.0,
               "connect_timeout": 2.0, "concurrency": 2},
    "groq": {"base_url": "https://api.groq.com", "model": "llama-3.1-8b-instant", "timeout": 60.0,
             "connect_timeout": 5.0, "concurrency": 8, "rpm": 30, "tpm": 6000,
             "response_format": "auto"},
    "openai": {"base_url": "http://127.0.0.1:1234/v1", "model": "local-model", "timeout": 120.0,
               "connect_timeout": 2.0, "concurrency": 2, "response_format": "auto"},
    "template": {"model": "template", "concurrency": 16},
}


class Secret:
    """A credential. `str()`/`repr()` never show it; `reveal()` does, for the HTTP client only."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # never pickled into a cache or state file by accident
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> "Secret":
        return self

    def __deepcopy__(self, memo: dict) -> "Secret":
        return self


def safe_url(url: str) -> str:
    """`url` without any user:password part, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    return url


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    model: str
    timeout: float = 60.0
    connect_timeout: float = 5.0
    concurrency: int = 2
    base_url: str = ""  # ollama: the host; groq: host root (SDK adds /openai/v1); openai: .../v1
    api_key: Secret | None = field(default=None, compare=False)
    api_key_env: str = ""  # where the key comes from, for messages
    rpm: int | None = None
    tpm: int | None = None
    period_seconds: float = 60.0  # the rate-limit window (60 s = "per minute"; tiny in tests)
    max_retry_after: float = 10.0  # a 429 asking to wait longer than this moves on to the next provider
    rate_limit_retries: int = 5  # 429s retried on the same provider per request before moving on
    response_format: str = "auto"  # "auto" (negotiated per build) or one mode of the provider's ladder
    keep_alive: str | float | None = None
    health_timeout: float | None = None  # None: `timeout` for a local server, else min(timeout, 10)
    health_retry_after: float = 30.0

    @property
    def local(self) -> bool:
        """A server on this machine (Ollama, or an OpenAI-compatible one on loopback): free, and
        possibly busy with one request at a time, so it is waited for."""
        if self.name in ("ollama", "template"):
            return True
        if self.name != "openai":
            return False
        try:
            host = urlsplit(self.base_url).hostname or ""
        except ValueError:
            return False
        return host in LOCAL_HOSTS

    @property
    def health_wait(self) -> float:
        if self.health_timeout is not None:
            return self.health_timeout
        return self.timeout if self.local else min(self.timeout, 10.0)


@dataclass(frozen=True)
class BatchSettings:
    """`llm.batch`: how `--batch` uses the Groq Batch API (PROTOCOLS §3)."""

    model: str | None = None  # None: the component's `models.groq`, else llm.providers.groq.model
    second_pass_model: str | None = None  # set: lines the first batch got wrong go to a second batch first
    completion_window: str = "24h"
    discount: float = 0.5  # off the live price in the cost estimate; check console.groq.com/docs/batch
    poll_interval: float = 5.0  # seconds before the first status check; grows 1.5x per check...
    max_poll_interval: float = 60.0  # ...up to this
    max_lines: int = 50_000  # per batch; more requests are split into several batches
    max_bytes: int = 100_000_000  # per input file (Groq's limit is 100 MB)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> "BatchSettings":
        s, d = dict(section or {}), cls()
        poll = float(s.get("poll_interval", d.poll_interval))
        return cls(
            model=s.get("model") or None,
            second_pass_model=s.get("second_pass_model") or None,
            completion_window=str(s.get("completion_window", d.completion_window)),
            discount=float(s.get("discount", d.discount)),
            poll_interval=poll,
            max_poll_interval=max(poll, float(s.get("max_poll_interval", d.max_poll_interval))),
            max_lines=int(s.get("max_lines", d.max_lines)),
            max_bytes=int(s.get("max_bytes", d.max_bytes)),
        )


@dataclass(frozen=True)
class LLMSettings:
    chain: tuple[str, ...] = DEFAULT_CHAIN
    repair_retries: int = 2
    repair_temperature_step: float = 0.2  # each repair retry samples hotter by this, up to 1.0
    strict: bool = False  # model text or nothing: the template tier fills nothing
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    batch: BatchSettings = field(default_factory=BatchSettings)

    @classmethod
    def from_config(cls, llm_section: dict | None, env: Mapping[str, str],
                    chain_override: list[str] | None = None, *, strict: bool = False) -> "LLMSettings":
        """Settings from site.yaml's `llm:` mapping, the environment and the CLI's `--chain`
        (and `--strict`, which can only turn strictness on).

        Raises InputError (exit 2) listing every problem: a schema violation, an unknown provider in
        SITE_LLM_CHAIN or --chain.
        """
        from jsonschema import Draft202012Validator

        section = llm_section or {}
        problems = [
            Problem(CONFIG_FILE, e.message, None, ".".join(["llm", *map(str, e.absolute_path)]))
            for e in sorted(Draft202012Validator(LLM_SETTINGS_SCHEMA).iter_errors(section),
                            key=lambda e: [str(p) for p in e.absolute_path])
        ]
        chain = tuple(section.get("chain") or DEFAULT_CHAIN)
        env_chain = env.get("SITE_LLM_CHAIN", "").strip()
        if env_chain:
            chain, bad = _parse_chain(env_chain.split(","))
            problems += [Problem("<env SITE_LLM_CHAIN>", m) for m in bad]
        if isinstance(chain_override, str):
            chain_override = [chain_override]
        if chain_override:
            items = [p for item in chain_override for p in str(item).split(",")]
            chain, bad = _parse_chain(items)
            problems += [Problem("<--chain>", m) for m in bad]
        if problems:
            raise InputError("invalid llm settings", problems)

        raw = section.get("providers") or {}
        providers = {}
        for name in PROVIDER_NAMES:
            conf = {**_DEFAULTS[name], **(raw.get(name) or {})}
            providers[name] = _provider(name, conf, env)
        prices = {k: {"input": float(v["input"]), "output": float(v["output"])}
                  for k, v in (section.get("prices") or {}).items()}
        return cls(chain=chain, repair_retries=int(section.get("repair_retries", 2)),
                   repair_temperature_step=float(section.get("repair_temperature_step", 0.2)),
                   strict=bool(strict or section.get("strict", False)),
                   providers=providers, prices=prices, batch=BatchSettings.from_config(section.get("batch")))

    def provider(self, name: str) -> ProviderSettings:
        if name in self.providers:
            return self.providers[name]
        return _provider(name, dict(_DEFAULTS[name]), {})

    def secrets(self) -> list[str]:
        """Every credential value, for redaction of messages."""
        return [p.api_key.reveal() for p in self.providers.values() if p.api_key]

    def price(self, provider: str, model: str) -> Mapping[str, float] | None:
        return self.prices.get(f"{provider}:{model}")


def _parse_chain(items: list[str]) -> tuple[tuple[str, ...], list[str]]:
    names = [i.strip().lower() for i in items if i.strip()]
    bad = [f"unknown provider {n!r} (known: {', '.join(PROVIDER_NAMES)})" for n in names if n not in PROVIDER_NAMES]
    if not names:
        bad.append("the chain is empty")
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return tuple(seen), bad


def _provider(name: str, conf: dict, env: Mapping[str, str]) -> ProviderSettings:
    base_url = conf.get("base_url", "")
    api_key = None
    key_env = ""
    if name == "ollama":
        base_url = env.get("OLLAMA_HOST") or conf.get("host") or ""
    elif name == "groq":
        base_url = env.get("GROQ_BASE_URL") or base_url
        key_env = "GROQ_API_KEY"
    elif name == "openai":
        base_url = env.get("OPENAI_BASE_URL") or base_url
        key_env = "OPENAI_API_KEY"
    if key_env and env.get(key_env):
        api_key = Secret(env[key_env])
    return ProviderSettings(
        name=name,
        model=str(conf.get("model", "")),
        timeout=float(conf.get("timeout", 60.0)),
        connect_timeout=float(conf.get("connect_timeout", 5.0)),
        concurrency=int(conf.get("concurrency", 2)),
        base_url=str(base_url).rstrip("/"),
        api_key=api_key,
        api_key_env=key_env,
        rpm=conf.get("rpm"),
        tpm=conf.get("tpm"),
        period_seconds=float(conf.get("period_seconds", 60.0)),
        max_retry_after=float(conf.get("max_retry_after", 10.0)),
        rate_limit_retries=int(conf.get("rate_limit_retries", 5)),
        response_format=_mode(conf.get("response_format", "auto")),
        keep_alive=conf.get("keep_alive"),
        health_timeout=float(conf["health_timeout"]) if conf.get("health_timeout") is not None else None,
        health_retry_after=float(conf.get("health_retry_after", 30.0)),
    )


def _mode(value: object) -> str:
    return "text" if value == "none" else str(value)
