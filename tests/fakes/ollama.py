"""Loopback fake of the Ollama native HTTP API (see /work/shared/PROTOCOLS.md §1)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from .base import FakeServer, Reply, Request, dumps, split_pieces

__all__ = ["FakeOllama", "normalize_model_name"]

_DEFAULT_ERRORS = {
    400: "invalid request",
    429: "too many requests",
    499: "request canceled",
    500: "an error was encountered while running the model",
    502: "bad gateway",
    503: "server busy, please try again.  maximum pending requests exceeded",
}
_STREAM_ERROR = "an error was encountered while running the model"


def normalize_model_name(name: str) -> str:
    """``llama3.2`` -> ``llama3.2:latest`` (tag defaults to latest; names are case-insensitive)."""
    name = name.strip()
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest"
    return name.lower()


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeOllama(FakeServer):
    """Fake Ollama server.

    ``models``: names served by /api/tags and accepted by /api/chat + /api/generate
    (``"llama3.2"`` matches ``"llama3.2:latest"``, case-insensitive); other names get 404
    ``model 'x' not found``. ``models=None``: accept any model (and /api/tags lists none).
    ``tags_status``: non-200 makes /api/tags fail with ``{"error": ...}``; ``tags_delay``: seconds
    before /api/tags answers (a server busy loading a model).
    ``schema_format=False``: a server older than 0.5, which refuses ``format: <schema>`` with 400
    ``invalid format`` (``format: "json"`` still works).
    The list is mutable at runtime (``fake.models.append(...)``).
    """

    GENERATION_PATHS = ("/api/chat", "/api/generate")
    name = "fake-ollama"

    def __init__(
        self,
        models: Iterable[str] | None = ("llama3.2:latest",),
        *,
        tags_status: int = 200,
        tags_delay: float = 0.0,
        schema_format: bool = True,
        version: str = "0.6.5",
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        super().__init__(host=host, port=port)
        self.models: list[str] | None = list(models) if models is not None else None
        self.tags_status = tags_status
        self.tags_delay = tags_delay
        self.schema_format = schema_format
        self.version = version
        self.loaded: dict[str, datetime] = {}  # model -> expires_at, shown by /api/ps

    def reset(self) -> None:
        """Also forget which models /api/ps reports as loaded."""
        super().reset()
        with self._cond:
            self.loaded.clear()

    # ---- routing -----------------------------------------------------------------

    def route(self, req: Request) -> None:
        h, m, p = req.handler, req.method, req.path
        if p == "/" and m in ("GET", "HEAD"):
            return self.send_text(h, 200, "Ollama is running")
        if p == "/api/version" and m == "GET":
            return self.send_json(h, 200, {"version": self.version})
        if p == "/api/tags" and m == "GET":
            if self.tags_delay and self._stop_event.wait(self.tags_delay):
                return self.drop(h)
            if self.tags_status != 200:
                msg = _DEFAULT_ERRORS.get(self.tags_status, "internal error")
                return self.send_json(h, self.tags_status, {"error": msg})
            return self.send_json(h, 200, {"models": [self._model_entry(n) for n in self.models or []]})
        if p == "/api/ps" and m == "GET":
            return self.send_json(h, 200, {"models": self._ps_entries()})
        if p == "/api/chat" and m == "POST":
            return self._generate(req, chat=True)
        if p == "/api/generate" and m == "POST":
            return self._generate(req, chat=False)
        # gin's default for unknown routes (and wrong methods)
        return self.send_text(h, 404, "404 page not found")

    def internal_error_body(self, exc: Exception) -> Any:
        return {"error": f"fake ollama internal error: {exc!r}"}

    # ---- models ------------------------------------------------------------------

    def has_model(self, name: str) -> bool:
        if self.models is None:
            return True
        want = normalize_model_name(name)
        return any(normalize_model_name(m) == want for m in self.models)

    def _details(self, full: str) -> dict:
        base = full.split(":")[0].rsplit("/", 1)[-1]
        fam = re.match(r"[a-z]+", base)
        family = fam.group(0) if fam else "llama"
        size = re.search(r"(\d+(?:\.\d+)?)b\b", full.split(":", 1)[-1]) or re.search(r"(\d+(?:\.\d+)?)$", base)
        return {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": f"{size.group(1)}B" if size else "7B",
            "quantization_level": "Q4_K_M",
        }

    def _model_entry(self, name: str) -> dict:
        full = name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"
        return {
            "name": full,
            "model": full,
            "modified_at": "2025-05-04T17:37:44.706015396-07:00",
            "size": 2019393189,
            "digest": hashlib.sha256(full.encode()).hexdigest(),
            "details": self._details(full),
            "capabilities": ["completion", "tools"],
        }

    def _ps_entries(self) -> list[dict]:
        with self._cond:
            loaded = dict(self.loaded)
        out = []
        for full, expires in loaded.items():
            entry = self._model_entry(full)
            out.append(
                {
                    "name": entry["name"],
                    "model": entry["model"],
                    "size": entry["size"],
                    "digest": entry["digest"],
                    "details": entry["details"],
                    "expires_at": expires.isoformat(),
                    "size_vram": entry["size"],
                    "context_length": 4096,
                }
            )
        return out

    def _mark_loaded(self, model: str, keep_alive: Any) -> None:
        want = normalize_model_name(model)
        full = next((m for m in self.models or [] if normalize_model_name(m) == want), model)
        with self._cond:
            if keep_alive in (0, "0", "0s", "0m"):
                self.loaded.pop(full, None)
            else:
                self.loaded[full] = datetime.now(timezone.utc) + timedelta(minutes=5)

    # ---- generation --------------------------------------------------------------

    def _error(self, h, status: int, message: str, headers: dict | None = None) -> None:
        self.send_json(h, status, {"error": message}, headers)

    def _generate(self, req: Request, *, chat: bool) -> None:
        h = req.handler
        body = req.body
        if not req.raw:
            return self._error(h, 400, "missing request body")
        if not isinstance(body, dict):
            return self._error(h, 400, "invalid character in request body: not a JSON object")
        model = body.get("model")
        if not model:
            return self._error(h, 400, "model is required")
        fmt = body.get("format")
        if fmt not in (None, "", "json") and (not isinstance(fmt, dict) or not self.schema_format):
            return self._error(h, 400, f'invalid format: "{json.dumps(fmt)}"; expected "json" or a valid JSON Schema object')
        if not self.has_model(model):
            return self._error(h, 404, f"model '{model}' not found")

        stream = body.get("stream")
        stream = True if stream is None else bool(stream)  # server default: stream

        # Empty messages / prompt = load (or unload with keep_alive 0): no reply consumed.
        empty = not body.get("messages") if chat else (not body.get("prompt") and not body.get("images"))
        if empty:
            unload = body.get("keep_alive") in (0, "0", "0s", "0m")
            self._mark_loaded(model, body.get("keep_alive"))
            resp = {"model": model, "created_at": _now_rfc3339()}
            if chat:
                resp["message"] = {"role": "assistant", "content": ""}
            else:
                resp["response"] = ""
            resp.update({"done": True, "done_reason": "unload" if unload else "load"})
            return self.send_json(h, 200, resp)

        reply = self.next_reply(body)
        self._mark_loaded(model, body.get("keep_alive"))
        if not self.apply_delay_and_drop(h, reply):
            return
        if reply.status != 200:
            msg = reply.error or (
                f"model '{model}' not found" if reply.status == 404 else _DEFAULT_ERRORS.get(reply.status, "error")
            )
            return self._error(h, reply.status, msg, reply.headers)

        text = reply.text()
        if stream:
            return self._stream(h, body, reply, text, chat=chat)
        resp = self._chunk(model, text, chat=chat)
        resp.update(self._final_fields(body, reply, chat=chat))
        self.send_json(h, 200, resp, reply.headers)

    def _chunk(self, model: str, piece: str, *, chat: bool) -> dict:
        out: dict[str, Any] = {"model": model, "created_at": _now_rfc3339()}
        if chat:
            out["message"] = {"role": "assistant", "content": piece}
        else:
            out["response"] = piece
        return out

    def _final_fields(self, body: dict, reply: Reply, *, chat: bool) -> dict:
        out: dict[str, Any] = {"done": True, "done_reason": reply.finish_reason}
        if not chat and not body.get("raw"):
            out["context"] = [128006, 882, 128007, 271, 9906, 128009]
        pt, ct = reply.prompt_tokens, reply.completion_tokens
        out["total_duration"] = 2254970291
        out["load_duration"] = 574751416
        if pt is not None:  # Go omitempty: metrics absent when zero / unknown
            out["prompt_eval_count"] = pt
            out["prompt_eval_duration"] = 1502000000
        if ct is not None:
            out["eval_count"] = ct
            out["eval_duration"] = 175000000
        return out

    def _stream(self, h, body: dict, reply: Reply, text: str, *, chat: bool) -> None:
        model = body["model"]
        w = self.chunked(h, 200, "application/x-ndjson", reply.headers)
        pieces = split_pieces(text)
        if reply.stream_error:
            for piece in pieces[: max(1, len(pieces) // 2)]:
                w.write(dumps({**self._chunk(model, piece, chat=chat), "done": False}) + b"\n")
            w.write(dumps({"error": reply.error or _STREAM_ERROR}) + b"\n")
            return w.close()
        for piece in pieces:
            w.write(dumps({**self._chunk(model, piece, chat=chat), "done": False}) + b"\n")
        final = self._chunk(model, "", chat=chat)
        final.update(self._final_fields(body, reply, chat=chat))
        w.write(dumps(final) + b"\n")
        w.close()
