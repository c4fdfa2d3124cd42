"""Any OpenAI-compatible chat-completions server (LM Studio, vLLM, llama.cpp server, Ollama's
/v1) over plain httpx: `POST {base_url}/chat/completions`. Key from OPENAI_API_KEY if set."""

from __future__ import annotations

import json
from typing import Callable, Sequence

import httpx

from ..settings import ProviderSettings, safe_url
from .base import (Completion, InvalidGeneration, ModeRefused, Provider, ProviderUnavailable,
                   RateLimited, error_info, is_mode_refusal, response_format, retry_after_from, short,
                   usage_of, with_schema_hint)

PING = [{"role": "user", "content": "Reply with the word OK."}]


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(self, settings: ProviderSettings):
        super().__init__(settings)
        self.where = safe_url(settings.base_url)
        headers = {"content-type": "application/json", "accept": "application/json"}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key.reveal()}"
        self.client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            follow_redirects=False,
        )

    async def health(self) -> tuple[bool, str]:
        """Can it answer? A models listing that succeeds, else (no /models) a 1-token completion.
        A local server gets a patient timeout: one busy with another request is not dead."""
        wait = self.settings.health_wait
        timeout = httpx.Timeout(wait, connect=self.settings.connect_timeout)
        try:
            r = await self.client.get("models", timeout=timeout)
            if r.status_code in (401, 403):
                return False, f"authentication failed at {self.where} (HTTP {r.status_code}); check OPENAI_API_KEY"
            if r.status_code >= 400:  # some servers have no /models: ask for one token instead
                return await self._ping(timeout, f"GET /models: HTTP {r.status_code}")
        except httpx.ConnectError:
            return False, f"not reachable at {self.where} (connection refused)"
        except httpx.TimeoutException:
            return False, f"no answer from {self.where} within {wait:g}s (health_timeout)"
        except httpx.TransportError as e:
            return False, f"transport error at {self.where}: {type(e).__name__}"
        try:
            ids = [m.get("id") for m in r.json().get("data", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            ids = []
        note = "" if not ids or self.settings.model in ids else f" (not listed; serving: {', '.join(map(str, ids[:6]))})"
        return True, f"{self.where}, model {self.settings.model}{note}"

    async def _ping(self, timeout: httpx.Timeout, why: str) -> tuple[bool, str]:
        body = {"model": self.settings.model, "messages": PING, "max_tokens": 1, "stream": False}
        r = await self.client.post("chat/completions", json=body, timeout=timeout)
        if r.status_code != 200:
            return False, f"{why}; a 1-token completion: HTTP {r.status_code}: {short(_message(r), 120)}"
        return True, f"{self.where}, model {self.settings.model} answered a 1-token completion ({why})"

    async def complete(self, messages: Sequence[dict], schema: dict, params: dict, model: str, *,
                       name: str, offline: Callable[[], str] | None = None,
                       mode: str | None = None) -> Completion:
        mode = mode or self.settings.response_format
        fmt = response_format(mode, name, schema)
        if fmt is None or fmt["type"] != "json_schema":
            messages = with_schema_hint(messages, schema)
        body: dict = {"model": model, "messages": list(messages), "stream": False}
        if fmt is not None:
            body["response_format"] = fmt
        for ours, theirs in (("temperature", "temperature"), ("max_tokens", "max_tokens"),
                             ("seed", "seed"), ("top_p", "top_p")):
            if ours in params:
                body[theirs] = params[ours]
        try:
            r = await self.client.post("chat/completions", json=body)
        except httpx.ConnectError:
            raise ProviderUnavailable(f"not reachable at {self.where} (connection refused)",
                                      scope="server") from None
        except httpx.TimeoutException:
            raise ProviderUnavailable(f"timed out after {self.settings.timeout:g}s at {self.where}") from None
        except httpx.TransportError as e:
            raise ProviderUnavailable(f"transport error at {self.where}: {type(e).__name__}") from None
        if r.status_code != 200:
            msg, code, kind, failed = error_info(_payload(r))
            status = r.status_code
            if status == 429:
                raise RateLimited(retry_after_from(r.headers, msg, kind), f"rate limited (429): {short(msg, 160)}")
            if status in (401, 403):
                raise ProviderUnavailable(f"authentication failed (HTTP {status}); check OPENAI_API_KEY",
                                          scope="provider")
            if status == 404:
                raise ProviderUnavailable(f"not found (404) at {self.where}: {short(msg, 160)}", scope="model")
            if status == 400 and (code == "json_validate_failed" or failed is not None):
                raise InvalidGeneration([f"the answer was not valid JSON for the schema: {short(msg, 200)}"],
                                        failed or "")
            if status == 413:
                raise ProviderUnavailable(f"request too large (413): {short(msg, 160)}")
            if is_mode_refusal(status, msg, mode):
                raise ModeRefused(f"HTTP {status}: {short(msg, 120)}")
            raise ProviderUnavailable(f"HTTP {status} from {self.where}: {short(msg, 120)}")
        try:
            data = r.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason") or "unknown"
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ProviderUnavailable(f"malformed response from {self.where}") from None
        if not isinstance(text, str):
            text = json.dumps(text)
        return Completion(text=text, finish_reason=str(finish),
                          usage=usage_of(usage.get("prompt_tokens"), usage.get("completion_tokens")),
                          model=str(data.get("model") or model), mode=mode)

    async def aclose(self) -> None:
        await self.client.aclose()


def _payload(r: httpx.Response) -> object:
    try:
        return r.json()
    except ValueError:
        return r.text


def _message(r: httpx.Response) -> str:
    return error_info(_payload(r))[0]
