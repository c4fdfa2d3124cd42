"""Loopback fake of an OpenAI-compatible local server (LM Studio, vLLM, llama.cpp server,
llama-cpp-python's server): the Groq fake's chat-completions protocol under ``/v1``, plus the
behaviours of real local servers that matter to a client:

* ``response_formats``: the ``response_format`` types accepted. ``LLAMA_CPP_PYTHON`` accepts
  ``text`` and ``json_object`` (with or without a ``schema``, its grammar-constrained mode) and
  refuses ``json_schema`` the way llama-cpp-python's server does: HTTP 500 whose message is the
  request validation error "Input should be 'text' or 'json_object'". ``LM_STUDIO`` accepts
  only ``json_schema`` (and ``text``), refusing ``json_object`` with HTTP 400.
* ``single_slot``: one request at a time, and ``GET /v1/models`` waits for the slot too
  (llama-cpp-python's server takes its model lock for the listing): a busy server is slow to
  answer its health check, not dead.
* ``models_status``: a non-200 status for ``GET /v1/models`` (a server without the route).

``fake.url + "/v1"`` is the ``base_url`` a client uses.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Iterable

from .base import Request
from .groq import FakeGroq

__all__ = ["FakeOpenAI", "LLAMA_CPP_PYTHON", "LM_STUDIO", "ALL_FORMATS"]

ALL_FORMATS = frozenset({"text", "json_object", "json_schema"})
LLAMA_CPP_PYTHON = frozenset({"text", "json_object"})
LM_STUDIO = frozenset({"text", "json_schema"})

_PYDANTIC_REFUSAL = ("[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                     "'msg': \"Input should be 'text' or 'json_object'\", 'input': '%s', "
                     "'ctx': {'expected': \"'text' or 'json_object'\"}}]")


class FakeOpenAI(FakeGroq):
    PREFIX = "/v1"
    GENERATION_PATHS = ("/v1/chat/completions",)
    name = "fake-openai"

    def __init__(self, *, response_formats: Iterable[str] = ALL_FORMATS, single_slot: bool = False,
                 models_status: int = 200, api_key: str | None = None, models: Iterable[str] | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        super().__init__(api_key=api_key, models=models, host=host, port=port)
        self.response_formats = frozenset(response_formats)
        self.single_slot = single_slot
        self.models_status = models_status
        self._slot = threading.Lock()
        self.refused: list[dict] = []  # response_format of every refused request

    @property
    def base_url(self) -> str:
        return self.url + self.PREFIX

    def route(self, req: Request) -> None:
        if req.method == "GET" and req.path.rstrip("/") == self.PREFIX + "/models":
            with self._held():
                if self.models_status != 200:
                    return self.send_json(req.handler, self.models_status, {"detail": "Not Found"})
                return super().route(req)
        return super().route(req)

    def _chat(self, req: Request) -> None:
        body = req.body if isinstance(req.body, dict) else {}
        fmt = body.get("response_format")
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind is not None and kind not in self.response_formats:
            with self._cond:
                self.refused.append(fmt)
            return self._refuse(req, kind)
        with self._held():
            return super()._chat(req)

    def _refuse(self, req: Request, kind: str) -> None:
        if self.response_formats == LLAMA_CPP_PYTHON:
            return self._send_error(req.handler, 500, _PYDANTIC_REFUSAL % kind, "internal_server_error", None,
                                    extra={"param": None, "code": None})
        allowed = " or ".join(f"'{k}'" for k in sorted(self.response_formats - {"text"}))
        return self.send_json(req.handler, 400, {"error": f"'response_format.type' must be {allowed}"})

    def _held(self):
        return self._slot if self.single_slot else nullcontext()
