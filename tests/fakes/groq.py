"""Loopback fake of the Groq OpenAI-compatible API + Batch API (see /work/shared/PROTOCOLS.md §2, §3).

Serve it with ``groq.Groq(base_url=fake.url, api_key=fake.api_key, max_retries=0)``: the SDK's
base_url is the host root and every path is absolute ``/openai/v1/...``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

from .base import FakeServer, Reply, Request, dumps, split_pieces, ulid_like

__all__ = ["FakeGroq", "BatchPlan", "DEFAULT_GROQ_MODELS"]

DEFAULT_GROQ_MODELS = ("llama-3.1-8b-instant", "llama-3.3-70b-versatile", "meta-llama/llama-4-scout-17b-16e-instruct")

_JSON_FAILED_MSG = "Failed to generate JSON. Please adjust your prompt. See 'failed_generation' for more details."
_TOOL_FAILED_MSG = "Failed to call a function. Please adjust your prompt. See 'failed_generation' for more details."
_PREFIX = "/openai/v1"


@dataclass
class BatchPlan:
    """How the next created batches behave (snapshotted at ``batches.create`` time).

    Status advances one step every ``polls_per_status`` ``GET /openai/v1/batches/{id}`` polls:
    validating -> in_progress -> finalizing -> completed (``polls_per_status=0``: the first poll
    returns the final status). Failed validation: validating -> failed. Expiry:
    validating -> in_progress -> expired.
    """

    polls_per_status: int = 1
    final_status: str = "completed"  # "completed" | "failed" | "expired" | "cancelled"
    shuffle: bool = True  # output/error lines in a different order than the input
    error_custom_ids: set[str] = field(default_factory=set)  # -> error file, response null + error object
    invalid_custom_ids: set[str] = field(default_factory=set)  # -> error file, 400 json_validate_failed body
    validation_errors: list[dict] | None = None  # [{"line", "message", "code"}] -> status "failed"
    expire_after_fraction: float | None = None  # -> status "expired", only the first fraction answered


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def info(self) -> dict:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
        }


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: Any
    created_at: int
    expires_at: int
    plan: BatchPlan
    requests: list[tuple[int, str, dict]]  # (line number, custom_id, body)
    validation_errors: list[dict]
    stages: list[str]
    polls: int = 0
    status: str = "validating"
    stamps: dict[str, int] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    materialized: bool = False

    def to_json(self) -> dict:
        s = self.stamps
        final = self.status in ("completed", "failed", "expired", "cancelled")
        errors = None
        if self.validation_errors:
            errors = {
                "object": "list",
                "data": [
                    {"code": e.get("code"), "line": e.get("line"), "message": e.get("message"), "param": e.get("param")}
                    for e in self.validation_errors
                ],
            }
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            # files are produced at "finalizing" but only published with the final status
            "output_file_id": self.output_file_id if final else None,
            "error_file_id": self.error_file_id if final else None,
            "created_at": self.created_at,
            "in_progress_at": s.get("in_progress"),
            "expires_at": self.expires_at,
            "finalizing_at": s.get("finalizing"),
            "completed_at": s.get("completed"),
            "failed_at": s.get("failed"),
            "expired_at": s.get("expired"),
            "cancelling_at": s.get("cancelling"),
            "cancelled_at": s.get("cancelled"),
            "request_counts": {
                "total": 0 if self.status == "failed" else len(self.requests),
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }


def _window_seconds(window: str) -> int | None:
    m = re.fullmatch(r"\s*(\d+)\s*([mhd])\s*", str(window or ""))
    if not m:
        return None
    return int(m.group(1)) * {"m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """Minimal multipart/form-data parser: name -> (filename, data)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ValueError("no multipart boundary")
    delim = b"--" + m.group(1).encode()
    out: dict[str, tuple[str | None, bytes]] = {}
    for seg in body.split(delim)[1:]:
        if seg.startswith(b"--"):
            break
        if seg.startswith(b"\r\n"):
            seg = seg[2:]
        head, _, data = seg.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disp = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-disposition":
                disp = v
        name = re.search(r'\bname="([^"]*)"', disp)
        filename = re.search(r'\bfilename="([^"]*)"', disp)
        if name:
            out[name.group(1)] = (filename.group(1) if filename else None, data)
    return out


class FakeGroq(FakeServer):
    """Fake Groq server.

    ``api_key``: the Bearer token accepted (None = accept any). Wrong/missing -> 401 invalid_api_key.
    ``models``: None = accept any model (``/models`` lists ``DEFAULT_GROQ_MODELS``); a list = only those,
    others -> 404 ``model_not_found``.
    ``validate_json``: when True, a 200 reply whose content is not valid JSON for a request with
    ``response_format`` json_object/json_schema becomes Groq's 400 ``json_validate_failed`` (as the
    real service does); off by default so truncated ``finish_reason="length"`` answers can be scripted.
    """

    PREFIX = _PREFIX  # where the API lives (an OpenAI-compatible server: "/v1")
    GENERATION_PATHS = (_PREFIX + "/chat/completions",)
    name = "fake-groq"

    def __init__(
        self,
        api_key: str | None = "test-key",
        *,
        models: Iterable[str] | None = None,
        validate_json: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self.models: list[str] | None = list(models) if models is not None else None
        self.validate_json = validate_json
        self.batch_plan = BatchPlan()
        self.batches_created = 0
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self.batch_requests: list[dict] = []  # {"batch_id", "custom_id", "body"} for every batch line executed
        self._requests_served = 0
        self._batch_lock = threading.RLock()

    def reset(self) -> None:
        """Also forget files, batches, batch_requests, batches_created and restore the default BatchPlan."""
        super().reset()
        with self._batch_lock, self._cond:
            self.files.clear()
            self.batches.clear()
            self.batch_requests.clear()
            self.batches_created = 0
            self.batch_plan = BatchPlan()

    # ---- routing -----------------------------------------------------------------

    def route(self, req: Request) -> None:
        h, m, p = req.handler, req.method, req.path
        if not p.startswith(self.PREFIX + "/"):
            return self._unknown_url(req)
        if self.api_key is not None and req.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._send_error(h, 401, "Invalid API Key", "invalid_request_error", "invalid_api_key",
                                    headers=self._base_headers())
        rest = p[len(self.PREFIX):]
        parts = [x for x in rest.split("/") if x]
        if rest == "/chat/completions" and m == "POST":
            return self._chat(req)
        if parts[:1] == ["models"] and m == "GET":
            if len(parts) == 1:
                return self.send_json(h, 200, {"object": "list", "data": [self._model(x) for x in self._model_ids()]})
            if len(parts) >= 2:
                mid = "/".join(parts[1:])
                if self.models is None or mid in self.models:
                    return self.send_json(h, 200, self._model(mid))
                return self._model_not_found(h, mid)
        if parts[:1] == ["files"]:
            return self._files(req, parts[1:])
        if parts[:1] == ["batches"]:
            return self._batches(req, parts[1:])
        return self._unknown_url(req)

    def internal_error_body(self, exc: Exception) -> Any:
        return {"error": {"message": f"fake groq internal error: {exc!r}", "type": "internal_server_error"}}

    # ---- shared bits -------------------------------------------------------------

    def _model_ids(self) -> list[str]:
        return list(self.models) if self.models is not None else list(DEFAULT_GROQ_MODELS)

    @staticmethod
    def _model(mid: str) -> dict:
        return {
            "id": mid,
            "object": "model",
            "created": 1693721698,
            "owned_by": "Meta",
            "active": True,
            "context_window": 131072,
            "public_apps": None,
            "max_completion_tokens": 32768,
        }

    def _base_headers(self, req_id: str | None = None) -> dict[str, str]:
        return {"x-request-id": req_id or ulid_like("req_"), "x-groq-region": "fake"}

    def _ratelimit_headers(self, tokens: int = 0) -> dict[str, str]:
        with self._cond:
            self._requests_served += 1
            served = self._requests_served
        return {
            "x-ratelimit-limit-requests": "14400",
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-requests": str(max(0, 14400 - served)),
            "x-ratelimit-remaining-tokens": str(max(0, 6000 - tokens)),
            "x-ratelimit-reset-requests": "6s",
            "x-ratelimit-reset-tokens": "7.66s",
        }

    def _send_error(
        self,
        h,
        status: int,
        message: str,
        type_: str,
        code: str | None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict | None = None,
    ) -> None:
        err: dict[str, Any] = {"message": message, "type": type_}
        if code is not None:
            err["code"] = code
        err.update(extra or {})
        self.send_json(h, status, {"error": err}, headers)

    def _unknown_url(self, req: Request) -> None:
        self._send_error(
            req.handler, 404,
            f"Unknown request URL: {req.method} {req.path}. Please check the URL for typos, "
            "or see the docs at https://console.groq.com/docs/",
            "invalid_request_error", "unknown_url",
        )

    def _model_not_found(self, h, model: str, headers: dict | None = None) -> None:
        self._send_error(h, 404, f"The model `{model}` does not exist or you do not have access to it.",
                         "invalid_request_error", "model_not_found", headers=headers)

    def error_body(self, reply: Reply, model: str, text_if_any: str | None = None) -> dict:
        """The real Groq error shape for a scripted non-200 reply."""
        status = reply.status
        code = reply.error_code
        if status == 400:
            code = code or "invalid_request_error"
            msg = {"json_validate_failed": _JSON_FAILED_MSG, "tool_use_failed": _TOOL_FAILED_MSG}.get(code, "Bad request")
            type_ = "invalid_request_error"
        elif status == 401:
            code, msg, type_ = code or "invalid_api_key", "Invalid API Key", "invalid_request_error"
        elif status == 403:
            code, msg, type_ = code or "permission_denied", "Permission denied", "permissions_error"
        elif status == 404:
            code = code or "model_not_found"
            msg, type_ = f"The model `{model}` does not exist or you do not have access to it.", "invalid_request_error"
        elif status == 413:
            code, type_ = code or "rate_limit_exceeded", "tokens"
            msg = (f"Request too large for model `{model}` in organization `org_fake` service tier `on_demand` on "
                   "tokens per minute (TPM): Limit 6000, Requested 14810, please reduce your message size and try again.")
        elif status == 429:
            code, type_ = code or "rate_limit_exceeded", "tokens"
            msg = (f"Rate limit reached for model `{model}` in organization `org_fake` service tier `on_demand` on "
                   "tokens per minute (TPM): Limit 6000, Used 5034, Requested 1443. Please try again in 4.77s.")
        elif status == 498:
            code, msg, type_ = code or "capacity_exceeded", "Flex tier capacity exceeded.", "capacity_exceeded"
        elif status >= 500:
            msg = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Server Error")
            type_ = "internal_server_error"
        else:
            msg, type_ = "Request failed", "invalid_request_error"
        err: dict[str, Any] = {"message": reply.error or msg, "type": type_}
        if code is not None:
            err["code"] = code
        if reply.failed_generation is not None or code in ("json_validate_failed", "tool_use_failed"):
            fg = reply.failed_generation
            if fg is None:
                fg = text_if_any if text_if_any is not None else ""
            err["failed_generation"] = fg
        return {"error": err}

    def completion(self, body: dict, reply: Reply, text: str, req_id: str) -> dict:
        """A full ``chat.completion`` object (live and batch)."""
        model = body.get("model", "")
        out: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
        }
        usage = self._usage(reply)
        if usage is not None:
            out["usage"] = usage
        out["system_fingerprint"] = self._fingerprint(model)
        out["x_groq"] = self._x_groq(body, req_id)
        out["service_tier"] = body.get("service_tier") or "on_demand"
        return out

    @staticmethod
    def _fingerprint(model: str) -> str:
        return "fp_" + hashlib.sha256(model.encode()).hexdigest()[:10]

    @staticmethod
    def _x_groq(body: dict, req_id: str) -> dict:
        return {
            "id": req_id,
            "seed": body.get("seed") if body.get("seed") is not None else 1234567890,
            "usage": {"dram_cached_tokens": 0, "sram_cached_tokens": 0},
        }

    @staticmethod
    def _usage(reply: Reply) -> dict | None:
        """Groq always reports usage; both counts None -> usage omitted, one None -> 0."""
        pt, ct = reply.prompt_tokens, reply.completion_tokens
        if pt is None and ct is None:
            return None
        pt, ct = pt or 0, ct or 0
        prompt_time, completion_time = round(pt * 0.0002, 6), round(ct * 0.002, 6)
        return {
            "queue_time": 0.0087,
            "prompt_tokens": pt,
            "prompt_time": prompt_time,
            "completion_tokens": ct,
            "completion_time": completion_time,
            "total_tokens": pt + ct,
            "total_time": round(prompt_time + completion_time, 6),
            "prompt_tokens_details": {"cached_tokens": 0},
        }

    def _needs_json(self, body: dict) -> bool:
        rf = body.get("response_format")
        return isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema")

    # ---- chat completions --------------------------------------------------------

    def _chat(self, req: Request) -> None:
        h, body = req.handler, req.body
        req_id = ulid_like("req_")
        if not isinstance(body, dict):
            return self._send_error(h, 400, "failed to parse request body as a JSON object", "invalid_request_error",
                                    None, headers=self._base_headers(req_id))
        for prop in ("model", "messages"):
            if not body.get(prop):
                return self._send_error(h, 400, f"'{prop}' : property '{prop}' is missing", "invalid_request_error",
                                        None, headers=self._base_headers(req_id))
        model = body["model"]
        if self.models is not None and model not in self.models:
            return self._model_not_found(h, model, headers=self._base_headers(req_id))

        reply = self.next_reply(body)
        if not self.apply_delay_and_drop(h, reply):
            return
        text = reply.text()
        usage = self._usage(reply) or {}
        headers = {**self._base_headers(req_id), **self._ratelimit_headers(usage.get("total_tokens", 0))}
        if reply.status == 200 and self.validate_json and self._needs_json(body):
            try:
                json.loads(text)
            except ValueError:
                reply = copy.copy(reply)
                reply.status, reply.error_code = 400, "json_validate_failed"
        headers.update({k.lower(): v for k, v in reply.headers.items()})
        if reply.status != 200:
            return self.send_json(h, reply.status, self.error_body(reply, model, text), headers)
        if body.get("stream"):
            return self._chat_stream(h, body, reply, text, req_id, headers)
        self.send_json(h, 200, self.completion(body, reply, text, req_id), headers)

    def _chat_stream(self, h, body: dict, reply: Reply, text: str, req_id: str, headers: dict) -> None:
        model = body["model"]
        cid = f"chatcmpl-{uuid.uuid4()}"
        created = int(time.time())
        fp = self._fingerprint(model)
        w = self.chunked(h, 200, "text/event-stream", {**headers, "cache-control": "no-cache"})

        def event(obj: Any) -> None:
            w.write(b"data: " + dumps(obj) + b"\n\n")

        def chunk(delta: dict, finish: str | None, **extra: Any) -> dict:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": fp,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                **extra,
            }

        event(chunk({"role": "assistant", "content": ""}, None, x_groq={"id": req_id}))
        pieces = split_pieces(text)
        if reply.stream_error:
            for piece in pieces[: max(1, len(pieces) // 2)]:
                event(chunk({"content": piece}, None))
            event({"error": {"message": reply.error or "Internal Server Error", "type": "internal_server_error"}})
            return w.close()
        for piece in pieces:
            event(chunk({"content": piece}, None))
        usage = self._usage(reply)
        x_groq: dict[str, Any] = {"id": req_id}
        if usage is not None:
            x_groq["usage"] = usage
        extra: dict[str, Any] = {"x_groq": x_groq}
        if usage is not None and (body.get("stream_options") or {}).get("include_usage"):
            extra["usage"] = usage
        event(chunk({}, reply.finish_reason, **extra))
        w.write(b"data: [DONE]\n\n")
        w.close()

    # ---- files -------------------------------------------------------------------

    def _file_not_found(self, h, fid: str) -> None:
        self._send_error(h, 404, f"file not found: {fid}", "invalid_request_error", "not_found")

    def _new_file(self, filename: str, purpose: str, content: bytes) -> _File:
        f = _File(ulid_like("file_"), filename, purpose, content, int(time.time()))
        with self._cond:
            self.files[f.id] = f
        return f

    def _files(self, req: Request, parts: list[str]) -> None:
        h, m = req.handler, req.method
        if not parts:
            if m == "POST":
                return self._upload(req)
            if m == "GET":
                with self._cond:
                    data = [f.info() for f in self.files.values()]
                return self.send_json(h, 200, {"object": "list", "data": data})
            return self._unknown_url(req)
        fid = parts[0]
        with self._cond:
            f = self.files.get(fid)
        if f is None:
            return self._file_not_found(h, fid)
        if len(parts) == 1 and m == "GET":
            return self.send_json(h, 200, f.info())
        if len(parts) == 1 and m == "DELETE":
            with self._cond:
                self.files.pop(fid, None)
            return self.send_json(h, 200, {"id": fid, "object": "file", "deleted": True})
        if parts[1:] == ["content"] and m == "GET":
            return self.send_bytes(h, 200, f.content, "application/octet-stream")
        return self._unknown_url(req)

    def _upload(self, req: Request) -> None:
        h = req.handler
        ctype = req.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return self._send_error(h, 400, "request must be multipart/form-data", "invalid_request_error", None)
        try:
            form = _parse_multipart(req.raw, ctype)
        except ValueError as exc:
            return self._send_error(h, 400, f"invalid multipart body: {exc}", "invalid_request_error", None)
        purpose = form.get("purpose", (None, b""))[1].decode()
        if purpose != "batch":
            return self._send_error(h, 400, f"invalid purpose '{purpose}': must be 'batch'", "invalid_request_error",
                                    None, extra={"param": "purpose"})
        if "file" not in form:
            return self._send_error(h, 400, "'file' : property 'file' is missing", "invalid_request_error", None,
                                    extra={"param": "file"})
        filename, content = form["file"]
        f = self._new_file(filename or "upload.jsonl", "batch", content)
        self.send_json(h, 200, f.info())

    # ---- batches -----------------------------------------------------------------

    def _batch_not_found(self, h, bid: str) -> None:
        self._send_error(h, 404, f"batch not found: {bid}", "invalid_request_error", "not_found")

    def _batches(self, req: Request, parts: list[str]) -> None:
        h, m = req.handler, req.method
        if not parts:
            if m == "POST":
                return self._create_batch(req)
            if m == "GET":
                return self._list_batches(req)
            return self._unknown_url(req)
        bid = parts[0]
        with self._cond:
            b = self.batches.get(bid)
        if b is None:
            return self._batch_not_found(h, bid)
        if len(parts) == 1 and m == "GET":
            self._poll(b)
            with self._batch_lock:
                data = b.to_json()
            return self.send_json(h, 200, data)
        if parts[1:] == ["cancel"] and m == "POST":
            return self._cancel(h, b)
        return self._unknown_url(req)

    def _list_batches(self, req: Request) -> None:
        with self._cond:
            all_b = sorted(self.batches.values(), key=lambda b: b.created_at, reverse=True)
        after = req.query.get("after")
        if after:
            ids = [b.id for b in all_b]
            all_b = all_b[ids.index(after) + 1 :] if after in ids else []
        limit = int(req.query.get("limit") or 20)
        page = all_b[:limit]
        self.send_json(
            req.handler,
            200,
            {
                "object": "list",
                "data": [b.to_json() for b in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(all_b) > limit,
            },
        )

    @staticmethod
    def _validate_lines(content: bytes) -> tuple[list[tuple[int, str, dict]], list[dict]]:
        requests: list[tuple[int, str, dict]] = []
        errors: list[dict] = []
        seen: set[str] = set()
        lines = content.decode("utf-8", "replace").splitlines()
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                errors.append({"line": n, "code": "invalid_json_line", "message": "This line is not parseable as valid JSON."})
                continue
            if not isinstance(obj, dict):
                errors.append({"line": n, "code": "invalid_json_line", "message": "Each line must be a JSON object."})
                continue
            cid = obj.get("custom_id")
            if not isinstance(cid, str) or not cid:
                errors.append({"line": n, "code": "missing_required_parameter", "param": "custom_id",
                               "message": "Missing required parameter: 'custom_id'."})
                continue
            if cid in seen:
                errors.append({"line": n, "code": "duplicate_custom_id", "param": "custom_id",
                               "message": f"The custom_id for this request is a duplicate of another request: {cid}"})
                continue
            seen.add(cid)
            if obj.get("method") != "POST":
                errors.append({"line": n, "code": "invalid_request", "param": "method",
                               "message": "Only POST method is supported."})
                continue
            if obj.get("url") != "/v1/chat/completions":
                errors.append({"line": n, "code": "invalid_url", "param": "url",
                               "message": f"Invalid URL '{obj.get('url')}': must be '/v1/chat/completions'."})
                continue
            body = obj.get("body")
            if not isinstance(body, dict) or not body.get("model") or not body.get("messages"):
                errors.append({"line": n, "code": "missing_required_parameter", "param": "body",
                               "message": "'body' must contain 'model' and 'messages'."})
                continue
            requests.append((n, cid, body))
        if not lines or (not requests and not errors):
            errors.append({"line": None, "code": "empty_file", "message": "The input file is empty."})
        return requests, errors

    def _create_batch(self, req: Request) -> None:
        h, body = req.handler, req.body
        if not isinstance(body, dict):
            return self._send_error(h, 400, "failed to parse request body as a JSON object", "invalid_request_error", None)
        for prop in ("input_file_id", "endpoint", "completion_window"):
            if not body.get(prop):
                return self._send_error(h, 400, f"'{prop}' : property '{prop}' is missing", "invalid_request_error",
                                        None, extra={"param": prop})
        if body["endpoint"] != "/v1/chat/completions":
            return self._send_error(h, 400, "endpoint must be '/v1/chat/completions'", "invalid_request_error", None,
                                    extra={"param": "endpoint"})
        window = _window_seconds(body["completion_window"])
        if window is None:
            return self._send_error(h, 400, "completion_window must be a duration between 24h and 7d",
                                    "invalid_request_error", None, extra={"param": "completion_window"})
        with self._cond:
            f = self.files.get(body["input_file_id"])
            plan = copy.deepcopy(self.batch_plan)
        if f is None:
            return self._send_error(h, 400, f"input file not found: {body['input_file_id']}", "invalid_request_error",
                                    None, extra={"param": "input_file_id"})
        requests, errors = self._validate_lines(f.content)
        if plan.validation_errors:
            errors = errors + [dict(e) for e in plan.validation_errors]
        if errors or plan.final_status == "failed":
            if not errors:
                errors = [{"line": None, "code": "invalid_file", "message": "The input file failed validation."}]
            stages = ["validating", "failed"]
        elif plan.expire_after_fraction is not None or plan.final_status == "expired":
            stages = ["validating", "in_progress", "expired"]
        elif plan.final_status == "cancelled":
            stages = ["validating", "in_progress", "cancelling", "cancelled"]
        else:
            stages = ["validating", "in_progress", "finalizing", "completed"]
        now = int(time.time())
        b = _Batch(
            id=ulid_like("batch_"),
            input_file_id=f.id,
            endpoint=body["endpoint"],
            completion_window=body["completion_window"],
            metadata=body.get("metadata"),
            created_at=now,
            expires_at=now + window,
            plan=plan,
            requests=requests,
            validation_errors=errors,
            stages=stages,
        )
        with self._cond:
            self.batches[b.id] = b
            self.batches_created += 1
        self.send_json(h, 200, b.to_json())

    def _enter(self, b: _Batch, status: str) -> None:
        if b.status == status:
            return
        b.status = status
        b.stamps[status] = int(time.time())
        if status in ("finalizing", "completed", "expired", "cancelled") and not b.materialized:
            self._materialize(b)

    def _poll(self, b: _Batch) -> None:
        with self._batch_lock:  # not self._cond: materializing may call the responder
            b.polls += 1
            pps = b.plan.polls_per_status
            if b.status in ("completed", "failed", "expired", "cancelled"):
                return
            target = len(b.stages) - 1 if pps <= 0 else min(b.polls // pps, len(b.stages) - 1)
            cur = b.stages.index(b.status) if b.status in b.stages else 0
            for st in b.stages[cur + 1 : target + 1]:
                self._enter(b, st)

    def _cancel(self, h, b: _Batch) -> None:
        with self._batch_lock:
            if b.status in ("completed", "failed", "expired", "cancelled", "cancelling"):
                return self._send_error(h, 400, f"cannot cancel a batch with status '{b.status}'",
                                        "invalid_request_error", None)
            b.stages = [b.status, "cancelling", "cancelled"]
            b.polls = max(0, b.plan.polls_per_status)  # next poll(s) move on to "cancelled"
            self._enter(b, "cancelling")
            data = b.to_json()
        self.send_json(h, 200, data)

    def _materialize(self, b: _Batch) -> None:
        """Produce output/error files (called once, when the batch reaches finalizing or a final state)."""
        b.materialized = True
        plan = b.plan
        n = len(b.requests)
        if "cancelled" in b.stages:
            answered = 0
            skip_error = {"code": "batch_cancelled", "message": "This request was not executed because the batch was cancelled."}
        elif plan.expire_after_fraction is not None or "expired" in b.stages:
            frac = plan.expire_after_fraction if plan.expire_after_fraction is not None else 0.0
            answered = max(0, min(n, int(n * frac)))
            skip_error = {"code": "batch_expired",
                          "message": "This request could not be executed before the completion window expired."}
        else:
            answered, skip_error = n, None
        out_lines: list[dict] = []
        err_lines: list[dict] = []
        for i, (_line, cid, body) in enumerate(b.requests):
            if i >= answered:
                err_lines.append({"id": ulid_like("batch_req_out_"), "custom_id": cid, "response": None, "error": skip_error})
                continue
            if cid in plan.error_custom_ids:
                err_lines.append({"id": ulid_like("batch_req_out_"), "custom_id": cid, "response": None,
                                  "error": {"code": "internal_error", "message": "Internal error while processing the request."}})
                continue
            self.batch_requests.append({"batch_id": b.id, "custom_id": cid, "body": body})
            reply = self.next_reply(body)
            text = reply.text()
            req_id = ulid_like("req_")
            model = body.get("model", "")
            if cid in plan.invalid_custom_ids and reply.status == 200:
                reply = copy.copy(reply)
                reply.status, reply.error_code = 400, "json_validate_failed"
            elif reply.status == 200 and self.validate_json and self._needs_json(body):
                try:
                    json.loads(text)
                except ValueError:
                    reply = copy.copy(reply)
                    reply.status, reply.error_code = 400, "json_validate_failed"
            if reply.drop:
                err_lines.append({"id": ulid_like("batch_req_out_"), "custom_id": cid, "response": None,
                                  "error": {"code": "internal_error", "message": "Internal error while processing the request."}})
            elif reply.status != 200:
                err_lines.append({"id": ulid_like("batch_req_out_"), "custom_id": cid,
                                  "response": {"status_code": reply.status, "request_id": req_id,
                                               "body": self.error_body(reply, model, text)},
                                  "error": None})
            else:
                out_lines.append({"id": ulid_like("batch_req_out_"), "custom_id": cid,
                                  "response": {"status_code": 200, "request_id": req_id,
                                               "body": self.completion(body, reply, text, req_id)},
                                  "error": None})
        if plan.shuffle:
            rng = random.Random(b.id)
            for lines in (out_lines, err_lines):
                before = [ln["custom_id"] for ln in lines]
                rng.shuffle(lines)
                if len(lines) > 1 and [ln["custom_id"] for ln in lines] == before:
                    lines.append(lines.pop(0))  # guarantee a different order
        b.completed, b.failed = len(out_lines), len(err_lines)
        if out_lines:
            b.output_file_id = self._new_file(f"{b.id}_output.jsonl", "batch_output",
                                              b"".join(dumps(x) + b"\n" for x in out_lines)).id
        if err_lines:
            b.error_file_id = self._new_file(f"{b.id}_error.jsonl", "batch_output",
                                             b"".join(dumps(x) + b"\n" for x in err_lines)).id
