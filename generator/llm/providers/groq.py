"""Groq through the official async client, with its own retries off (`max_retries=0`): the chain's
policy decides what a 429, 413, 5xx or timeout means. The key comes from GROQ_API_KEY only and
never appears in a message."""

from __future__ import annotations

from typing import Callable, Sequence

import groq
import httpx

from ..settings import ProviderSettings, safe_url
from .base import (Completion, InvalidGeneration, ModeRefused, Provider, ProviderUnavailable,
                   RateLimited, error_info, is_mode_refusal, response_format, retry_after_from, short,
                   usage_of, with_schema_hint)


class GroqProvider(Provider):
    name = "groq"

    def __init__(self, settings: ProviderSettings):
        super().__init__(settings)
        self.where = safe_url(settings.base_url)
        self.client: groq.AsyncGroq | None = None
        if settings.api_key:
            self.client = groq.AsyncGroq(
                api_key=settings.api_key.reveal(),
                base_url=settings.base_url,
                max_retries=0,
                timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            )

    async def health(self) -> tuple[bool, str]:
        """Can it answer? The key is set and the models listing succeeds with it."""
        if self.client is None:
            return False, f"{self.settings.api_key_env} is not set"
        wait = self.settings.health_wait
        try:
            await self.client.with_options(timeout=httpx.Timeout(wait, connect=self.settings.connect_timeout)
                                           ).models.list()
        except (groq.AuthenticationError, groq.PermissionDeniedError) as e:
            return False, (f"authentication failed (HTTP {e.status_code}: {short(error_info(e.body)[0], 120)}); "
                           f"check {self.settings.api_key_env}")
        except groq.APIStatusError as e:
            return False, f"GET /models: HTTP {e.status_code} from {self.where}: {short(error_info(e.body)[0], 120)}"
        except groq.APITimeoutError:
            return False, f"no answer from {self.where} within {wait:g}s (health_timeout)"
        except groq.APIConnectionError:
            return False, f"not reachable at {self.where}"
        return True, f"{self.where}, model {self.settings.model}, key from {self.settings.api_key_env}"

    def request_body(self, messages: Sequence[dict], schema: dict, params: dict, model: str, *,
                     name: str, mode: str | None = None) -> dict:
        """The chat-completions body: sent live by complete(), written as a batch line by batch.py."""
        fmt = response_format(mode or self.settings.response_format, name, schema)
        if fmt is None or fmt["type"] != "json_schema":
            messages = with_schema_hint(messages, schema)
        body: dict = {"model": model, "messages": list(messages)}
        if fmt is not None:
            body["response_format"] = fmt
        for ours, theirs in (("temperature", "temperature"), ("max_tokens", "max_completion_tokens"),
                             ("seed", "seed"), ("top_p", "top_p")):
            if ours in params:
                body[theirs] = params[ours]
        return body

    async def complete(self, messages: Sequence[dict], schema: dict, params: dict, model: str, *,
                       name: str, offline: Callable[[], str] | None = None,
                       mode: str | None = None) -> Completion:
        if self.client is None:
            raise ProviderUnavailable(f"{self.settings.api_key_env} is not set", scope="provider")
        mode = mode or self.settings.response_format
        kwargs = {**self.request_body(messages, schema, params, model, name=name, mode=mode), "stream": False}
        try:
            resp = await self.client.chat.completions.create(**kwargs)
        except groq.RateLimitError as e:
            msg, _code, kind, _ = error_info(e.body)
            wait = retry_after_from(e.response.headers, msg, kind)
            raise RateLimited(wait, f"rate limited (429): {short(msg, 160)}") from None
        except (groq.AuthenticationError, groq.PermissionDeniedError) as e:
            msg = error_info(e.body)[0]
            raise ProviderUnavailable(
                f"authentication failed (HTTP {e.status_code}: {short(msg, 120)}); "
                f"check {self.settings.api_key_env}", scope="provider") from None
        except groq.NotFoundError as e:
            msg = error_info(e.body)[0]
            raise ProviderUnavailable(f"model {model!r} not found (404): {short(msg, 160)}",
                                      scope="model") from None
        except groq.BadRequestError as e:
            msg, code, _kind, failed = error_info(e.body)
            if code in ("json_validate_failed", "tool_use_failed") or failed is not None:
                raise InvalidGeneration(
                    [f"the answer was not valid JSON for the schema ({code or 'HTTP 400'}): {short(msg, 200)}"],
                    failed or "") from None
            if is_mode_refusal(400, msg, mode):
                raise ModeRefused(f"HTTP 400: {short(msg, 120)}") from None
            raise ProviderUnavailable(f"request rejected (400): {short(msg, 200)}") from None
        except groq.APIStatusError as e:
            msg = error_info(e.body)[0]
            if e.status_code == 413:
                raise ProviderUnavailable(f"request too large (413): {short(msg, 160)}") from None
            raise ProviderUnavailable(f"HTTP {e.status_code} from {self.where}: {short(msg, 160)}") from None
        except groq.APITimeoutError:
            raise ProviderUnavailable(f"timed out after {self.settings.timeout:g}s at {self.where}") from None
        except groq.APIConnectionError as e:
            if isinstance(e.__cause__, httpx.ConnectError):
                raise ProviderUnavailable(f"not reachable at {self.where} (connection refused)",
                                          scope="server") from None
            cause = type(e.__cause__).__name__ if e.__cause__ else "connection error"
            raise ProviderUnavailable(f"connection failed at {self.where} ({cause})") from None
        except groq.APIResponseValidationError:
            raise ProviderUnavailable(f"malformed response from {self.where}") from None
        if not resp.choices:
            raise ProviderUnavailable(f"empty response (no choices) from {self.where}")
        choice = resp.choices[0]
        usage = resp.usage
        return Completion(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason or "unknown",
            usage=usage_of(usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0),
            model=resp.model or model,
            mode=mode,
        )

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.close()
