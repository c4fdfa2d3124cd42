"""Ollama through the official async client (never the module-level functions: they bind
OLLAMA_HOST at import time). Timeouts are always set: the client's default waits forever."""

from __future__ import annotations

import json
from typing import Callable, Sequence

import httpx
import ollama
import pydantic

from ..settings import ProviderSettings, safe_url
from .base import (Completion, ModeRefused, Provider, ProviderUnavailable, RateLimited,
                   is_mode_refusal, short, usage_of)

FORMATS = {"json_schema": "schema", "auto": "schema", "json_object": "json", "text": None}


def same_model(configured: str, served: str) -> bool:
    """"llama3.2" matches "llama3.2:latest"; an explicit tag must match exactly."""
    def norm(n: str) -> str:
        n = n.strip().lower()
        return n if ":" in n.rsplit("/", 1)[-1] else n + ":latest"
    return norm(configured) == norm(served)


class OllamaProvider(Provider):
    name = "ollama"

    def __init__(self, settings: ProviderSettings):
        super().__init__(settings)
        self.where = safe_url(settings.base_url)
        self.client = ollama.AsyncClient(
            host=settings.base_url or None,
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        )
        # Patient: a server busy loading a model or answering another client is not a dead one.
        self._health_client = ollama.AsyncClient(
            host=settings.base_url or None,
            timeout=httpx.Timeout(settings.health_wait, connect=settings.connect_timeout),
        )

    async def health(self) -> tuple[bool, str]:
        try:
            listing = await self._health_client.list()
        except ollama.ResponseError as e:
            return False, f"/api/tags failed at {self.where}: {short(e.error)} (HTTP {e.status_code})"
        except ConnectionError:
            return False, f"not reachable at {self.where} (connection refused)"
        except httpx.TimeoutException:
            return False, f"no answer from {self.where} within {self.settings.health_wait:g}s (health_timeout)"
        except (httpx.TransportError, pydantic.ValidationError, json.JSONDecodeError) as e:
            return False, f"bad answer from {self.where}: {type(e).__name__}"
        names = [m.model for m in listing.models if m.model]
        model = self.settings.model
        if not any(same_model(model, n) for n in names):
            have = ", ".join(names[:8]) or "none"
            return False, f"model {model!r} is not pulled at {self.where} (available: {have}); run `ollama pull {model}`"
        return True, f"{self.where}, model {model} present"

    async def complete(self, messages: Sequence[dict], schema: dict, params: dict, model: str, *,
                       name: str, offline: Callable[[], str] | None = None,
                       mode: str | None = None) -> Completion:
        mode = mode or self.settings.response_format
        fmt = FORMATS.get(mode, "schema")
        options = {}
        if "temperature" in params:
            options["temperature"] = params["temperature"]
        if "max_tokens" in params:
            options["num_predict"] = params["max_tokens"]
        if "seed" in params:
            options["seed"] = params["seed"]
        if "top_p" in params:
            options["top_p"] = params["top_p"]
        try:
            resp = await self.client.chat(
                model=model, messages=list(messages), format=schema if fmt == "schema" else fmt,
                options=options or None,
                stream=False, keep_alive=self.settings.keep_alive,
            )
        except ollama.ResponseError as e:
            status = e.status_code
            if status == 404:
                raise ProviderUnavailable(f"model {model!r} not found at {self.where}: {short(e.error)}",
                                          scope="model") from None
            if status == 429:
                raise RateLimited(None, f"rate limited (429): {short(e.error)}") from None
            if is_mode_refusal(status, str(e.error), mode):
                raise ModeRefused(f"HTTP {status}: {short(e.error, 120)}") from None
            raise ProviderUnavailable(f"HTTP {status} from {self.where}: {short(e.error, 120)}") from None
        except ConnectionError:
            raise ProviderUnavailable(f"not reachable at {self.where} (connection refused)",
                                      scope="server") from None
        except httpx.TimeoutException as e:
            raise ProviderUnavailable(f"timed out after {self.settings.timeout:g}s "
                                      f"({type(e).__name__}) at {self.where}") from None
        except httpx.TransportError as e:
            raise ProviderUnavailable(f"transport error at {self.where}: {type(e).__name__}") from None
        except (pydantic.ValidationError, json.JSONDecodeError) as e:
            raise ProviderUnavailable(f"malformed response from {self.where}: {type(e).__name__}") from None
        return Completion(
            text=resp.message.content or "",
            finish_reason=resp.done_reason or ("stop" if resp.done else "unknown"),
            usage=usage_of(resp.prompt_eval_count, resp.eval_count),
            model=resp.model or model,
            mode=mode,
        )

    async def aclose(self) -> None:
        await self.client.close()
        await self._health_client.close()
