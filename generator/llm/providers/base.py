"""The provider interface: one small class per backend, and the exceptions that drive the chain."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Mapping, Sequence

from ..settings import ProviderSettings


@dataclass(frozen=True)
class Completion:
    text: str  # the answer text as the model emitted it
    finish_reason: str  # "stop" | "length" | ...
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    model: str = ""
    mode: str = ""  # the structured-output mode it was asked in (structured.py); "text": extract the JSON


class ProviderError(Exception):
    """Base of what a provider raises for the chain to act on. Messages never contain secrets."""


class ProviderUnavailable(ProviderError):
    """Move on to the next provider now.

    `scope` says how long the condition lasts: "call" (this call only: 5xx, timeout, 413),
    "model" (this model is missing on this provider), "server" (connection refused: skipped now,
    probed again later in the build), "provider" (bad key: skipped for the rest of the build).
    """

    def __init__(self, reason: str, *, scope: str = "call"):
        super().__init__(reason)
        self.reason = reason
        self.scope = scope


class RateLimited(ProviderError):
    """429: retry on the same provider after `retry_after` seconds (None = unknown) or move on."""

    def __init__(self, retry_after: float | None, reason: str = "rate limited (429)"):
        super().__init__(reason)
        self.retry_after = retry_after
        self.reason = reason


class ModeRefused(ProviderError):
    """The server refused the structured-output mode it was asked for (HTTP 400/422/500 naming
    response_format or format): the chain steps down one mode and sends the same request again."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_REFUSAL = re.compile(r"response_format|json_schema|json_object|Input should be 'text'|\bformat\b|grammar",
                      re.I)


def is_mode_refusal(status: int, message: str, mode: str) -> bool:
    """A 400/422/500/501 whose text names the output format, for a request that asked for one."""
    return mode != "text" and status in (400, 422, 500, 501) and bool(_REFUSAL.search(message or ""))


class InvalidGeneration(ProviderError):
    """The provider itself rejected the generation as invalid (Groq 400 json_validate_failed).

    Counts as an invalid answer: the chain feeds `errors` back (repair) like a validation failure.
    """

    def __init__(self, errors: list[str], text: str = ""):
        super().__init__("; ".join(errors))
        self.errors = errors
        self.text = text


class Provider(ABC):
    name: str = ""
    repairable = True  # False: the same input gives the same output, a repair retry is pointless

    def __init__(self, settings: ProviderSettings):
        self.settings = settings

    @abstractmethod
    async def health(self) -> tuple[bool, str]:
        """(ok, human-readable detail). Never raises for an unreachable backend."""

    @abstractmethod
    async def complete(self, messages: Sequence[dict], schema: dict, params: dict, model: str, *,
                       name: str, offline: Callable[[], str] | None = None,
                       mode: str | None = None) -> Completion:
        """One generation. `name` is the component (Groq's json_schema name); `offline` is the
        template tier's renderer; `mode` the structured-output mode (None: the settings' own).
        Raises ProviderUnavailable, RateLimited, ModeRefused or InvalidGeneration."""

    async def aclose(self) -> None:
        """Release the HTTP client."""


def usage_of(prompt_tokens: object, completion_tokens: object) -> dict:
    return {"prompt_tokens": int(prompt_tokens or 0), "completion_tokens": int(completion_tokens or 0)}


def short(text: object, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_GO_SCALE = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_TRY_AGAIN = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|ns))+)")


def go_duration(text: str) -> float | None:
    """Seconds of a Go duration string ("172ms", "7.66s", "2m59.56s", "1h2m"), None if not one."""
    text = text.strip()
    if not text:
        return None
    pos, total = 0, 0.0
    while pos < len(text):
        m = _GO_PART.match(text, pos)
        if not m:
            return None
        total += float(m.group(1)) * _GO_SCALE[m.group(2)]
        pos = m.end()
    return total


def retry_after_from(headers: Mapping[str, str] | None, message: str = "", kind: str = "") -> float | None:
    """The wait a 429 asks for, in seconds: `retry-after-ms`, `retry-after` (seconds or HTTP date),
    then `x-ratelimit-reset-requests|tokens` (Go durations; `kind` = the error's type picks one),
    then "try again in 4.77s" in the message. None when nothing says."""
    headers = headers or {}

    def get(name: str) -> str | None:
        value = headers.get(name)
        return value if isinstance(value, str) and value.strip() else None

    if (v := get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(v) / 1000.0)
        except ValueError:
            pass
    if (v := get("retry-after")) is not None:
        try:
            return max(0.0, float(v))
        except ValueError:
            try:
                when = parsedate_to_datetime(v)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=timezone.utc)
                return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    resets = {k: go_duration(get(f"x-ratelimit-reset-{k}") or "") for k in ("requests", "tokens")}
    if resets.get(kind) is not None:
        return resets[kind]
    known = [v for v in resets.values() if v is not None]
    if known:
        return max(known)
    m = _TRY_AGAIN.search(message or "")
    return go_duration(m.group(1)) if m else None


_SCHEMA_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def error_info(body: object) -> tuple[str, str, str, str | None]:
    """(message, code, type, failed_generation) from an OpenAI-shaped error body."""
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, dict):
        fg = err.get("failed_generation")
        return (str(err.get("message") or ""), str(err.get("code") or ""), str(err.get("type") or ""),
                fg if isinstance(fg, str) else None)
    return (str(err or ""), "", "", None)


def schema_name(component: str) -> str:
    name = "".join(c if c in _SCHEMA_NAME_OK else "_" for c in component)[:64]
    return name or "output"


def response_format(kind: str, component: str, schema: dict) -> dict | None:
    """The OpenAI-style `response_format` of a mode ("auto" starts at the strongest)."""
    if kind in ("json_schema", "auto"):
        return {"type": "json_schema",
                "json_schema": {"name": schema_name(component), "schema": schema, "strict": False}}
    if kind == "json_object_schema":  # llama.cpp server: the schema becomes a decoding grammar
        return {"type": "json_object", "schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def schema_text(schema: dict) -> str:
    return json.dumps(schema, ensure_ascii=False, sort_keys=True)


def with_schema_hint(messages: Sequence[dict], schema: dict) -> list[dict]:
    """For JSON modes that do not carry the schema (json_object / text): state it in the prompt,
    unless a message already does (the chain puts it in the user message)."""
    text = schema_text(schema)
    if any(text in str(m.get("content", "")) for m in messages):
        return list(messages)
    hint = "Answer with one JSON object only, matching this JSON Schema:\n" + text
    out = [dict(m) for m in messages]
    for m in out:
        if m.get("role") == "system":
            m["content"] = f"{m.get('content', '')}\n\n{hint}"
            return out
    return [{"role": "system", "content": hint}, *out]
