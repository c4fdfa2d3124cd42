"""Shared machinery for the loopback fake LLM servers (standard library only).

Each fake is a real ``http.server.ThreadingHTTPServer`` bound to 127.0.0.1 on a free
port and served from a daemon thread, so the official ``ollama`` / ``groq`` clients talk
to it over a real socket (HTTP/1.1, keep-alive, chunked streaming).

Scripting model (same for every fake):

* ``fake.push(Reply(...), ...)`` queues replies consumed FIFO by the next *generation*
  requests (Ollama ``/api/chat`` + ``/api/generate``, Groq chat completions and Groq batch
  lines).
* When the queue is empty, ``fake.responder(request_json)`` is called; it may return a
  ``Reply``, a ``str`` (the content) or a ``dict`` (content, JSON-encoded).
* ``fake.calls`` logs every request received (all routes), ``fake.chat_calls()`` only the
  generation ones; ``in_flight`` / ``max_in_flight`` count concurrent generation requests.
"""

from __future__ import annotations

import json
import math
import random
import socket
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

__all__ = ["Call", "Reply", "FakeServer", "Request", "Responder"]


# --------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------


@dataclass
class Call:
    """One HTTP request received by a fake."""

    method: str
    path: str  # path without the query string
    headers: dict[str, str]  # lower-case keys
    body: dict | bytes | None  # parsed JSON (dict, or list for odd payloads), raw bytes, or None if empty
    at: float  # time.monotonic() when the request was read
    query: dict[str, str] = field(default_factory=dict)  # parsed query string (extra, not in the brief)


@dataclass
class Reply:
    """A scripted answer for one generation request."""

    content: str | dict | None = None  # dict -> json.dumps'd; None -> "{}" (same as the default responder)
    status: int = 200  # non-200 -> error body in the provider's real error shape
    error: str | None = None  # error message (error body / Ollama mid-stream error line)
    error_code: str | None = None  # Groq error.code ("rate_limit_exceeded", "json_validate_failed", ...)
    failed_generation: str | None = None  # Groq 400 json_validate_failed / tool_use_failed
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers, override defaults
    delay: float = 0.0  # seconds before the first byte; interrupted by stop()
    finish_reason: str = "stop"  # Ollama done_reason / Groq finish_reason
    truncate: bool = False  # cut the content text in half (invalid JSON, as a real truncated answer)
    prompt_tokens: int | None = 30  # None -> metric omitted
    completion_tokens: int | None = 40
    stream_error: bool = False  # streaming: emit an in-stream error after part of the content
    drop: bool = False  # close the connection without answering

    def text(self, default: str = "{}") -> str:
        """The answer text as the model would emit it (after ``truncate``)."""
        c = self.content
        if c is None:
            s = default
        elif isinstance(c, str):
            s = c
        else:
            s = json.dumps(c, ensure_ascii=False)
        if self.truncate:
            s = s[: len(s) // 2]
        return s


Responder = Callable[[dict], "Reply | str | dict | None"]


def as_reply(value: Any) -> Reply:
    if isinstance(value, Reply):
        return value
    if value is None:
        return Reply()
    if isinstance(value, (str, dict)):
        return Reply(content=value)
    raise TypeError(f"responder must return Reply | str | dict, got {type(value).__name__}")


def default_responder(request_json: dict) -> Reply:
    return Reply(content="{}")


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------

_ULID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def ulid_like(prefix: str) -> str:
    """Groq-style ids: ``req_01jpra5n2qef6s66k65v8sy51h``."""
    return prefix + "01j" + "".join(random.choice(_ULID_ALPHABET) for _ in range(23))


def split_pieces(text: str, max_pieces: int = 16) -> list[str]:
    """Split text into streaming pieces (non-empty, concatenating back to ``text``)."""
    if not text:
        return []
    size = max(4, math.ceil(len(text) / max_pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class Request:
    handler: "_Handler"
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    body: Any  # dict/list (JSON), bytes, or None
    call: Call

    @property
    def is_json_object(self) -> bool:
        return isinstance(self.body, dict)


# --------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default listen backlog (5) stalls bursts of concurrent clients
    fake: "FakeServer"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + chunked streaming, like the real servers
    server_version = "fake"
    sys_version = ""
    timeout = 30  # idle keep-alive connections eventually give their thread back
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without NODELAY, Nagle + delayed ACK add ~40 ms each
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._fake_started = False
        self.server.fake._track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._track_connection(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _dispatch(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = do_PATCH = do_OPTIONS = _dispatch


class ChunkedWriter:
    """Transfer-Encoding: chunked response body, flushed piece by piece."""

    def __init__(self, h: _Handler, status: int, content_type: str, headers: dict[str, str]):
        self.h = h
        h._fake_started = True
        h.send_response(status)
        all_headers = {"content-type": content_type, **_lower(headers), "transfer-encoding": "chunked"}
        for k, v in all_headers.items():
            h.send_header(k, v)
        h.end_headers()

    def write(self, data: bytes) -> None:
        if data:
            self.h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def close(self) -> None:
        self.h.wfile.write(b"0\r\n\r\n")


def _lower(headers: dict[str, str] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


# --------------------------------------------------------------------------------------
# Base fake
# --------------------------------------------------------------------------------------


class FakeServer:
    """Base class: lifecycle, call log, reply queue, concurrency accounting."""

    GENERATION_PATHS: tuple[str, ...] = ()
    name = "fake"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self._cond = threading.Condition(threading.RLock())
        self.calls: list[Call] = []
        self._queue: deque[Reply] = deque()
        self.responder: Responder = default_responder
        self.in_flight = 0
        self.max_in_flight = 0
        self.server_errors: list[str] = []  # tracebacks of exceptions raised inside the fake
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._conns: set[socket.socket] = set()
        self._url: str | None = None

    # ---- lifecycle ---------------------------------------------------------------

    def start(self) -> "FakeServer":
        if self._server is not None:
            return self
        self._stop_event = threading.Event()
        srv = _Server((self.host, self.port), _Handler)
        srv.fake = self
        self._server = srv
        port = srv.server_address[1]
        self._url = f"http://{self.host}:{port}"
        self._thread = threading.Thread(
            target=srv.serve_forever, kwargs={"poll_interval": 0.02}, name=f"{self.name}:{port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        srv = self._server
        if srv is None:
            return
        self._server = None
        self._stop_event.set()  # wakes delayed replies
        srv.shutdown()
        srv.server_close()
        with self._cond:
            conns = list(self._conns)
        for c in conns:  # close keep-alive / in-flight connections so clients see it
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (still available after stop(): handy for closed-port tests)."""
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return self._url

    @property
    def running(self) -> bool:
        return self._server is not None

    # ---- scripting ---------------------------------------------------------------

    def push(self, *replies: Reply | str | dict) -> None:
        with self._cond:
            self._queue.extend(as_reply(r) for r in replies)

    @property
    def pending_replies(self) -> int:
        """Number of pushed replies not consumed yet."""
        with self._cond:
            return len(self._queue)

    def reset(self) -> None:
        """Forget calls, queued replies and concurrency peaks; restore the default responder."""
        with self._cond:
            self.calls.clear()
            self._queue.clear()
            self.max_in_flight = self.in_flight
            self.responder = default_responder

    def next_reply(self, request_json: Any) -> Reply:
        with self._cond:
            if self._queue:
                return self._queue.popleft()
            responder = self.responder
        return as_reply(responder(request_json))

    # ---- inspection --------------------------------------------------------------

    def is_generation(self, method: str, path: str) -> bool:
        return method == "POST" and path in self.GENERATION_PATHS

    def chat_calls(self) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if self.is_generation(c.method, c.path)]

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
        """Block until ``predicate()`` (evaluated under the fake's lock) is true; AssertionError on timeout."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError(f"{type(self).__name__}: timed out after {timeout}s waiting for {what}")

    def wait_for_calls(self, n: int, timeout: float = 5.0) -> list[Call]:
        """Wait until at least ``n`` generation calls arrived; returns them."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.chat_calls()) >= n, timeout)
            got = self.chat_calls()
        if not ok:
            raise AssertionError(
                f"{type(self).__name__}: expected >= {n} generation calls within {timeout}s, got {len(got)} "
                f"(all calls: {[f'{c.method} {c.path}' for c in self.calls]})"
            )
        return got

    # ---- request handling --------------------------------------------------------

    def _track_connection(self, conn: socket.socket, add: bool) -> None:
        with self._cond:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _read_request(self, h: _Handler) -> Request:
        split = urlsplit(h.path)
        headers = {k.lower(): v for k, v in h.headers.items()}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raw = _read_chunked(h.rfile)
        else:
            length = int(headers.get("content-length") or 0)
            raw = h.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            body = raw
            if not headers.get("content-type", "").startswith("multipart/"):
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
        call = Call(
            method=h.command,
            path=split.path,
            headers=headers,
            body=body,
            at=time.monotonic(),
            query=dict(parse_qsl(split.query)),
        )
        return Request(h, h.command, split.path, call.query, headers, raw, body, call)

    def _handle(self, h: _Handler) -> None:
        try:
            req = self._read_request(h)
        except (OSError, ValueError):
            h.close_connection = True
            return
        gen = self.is_generation(req.method, req.path)
        with self._cond:
            self.calls.append(req.call)
            if gen:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._cond.notify_all()
        try:
            self.route(req)
        except OSError:  # client went away / connection shut down by stop(): not a fake bug
            h.close_connection = True
        except Exception as exc:  # a bug in the fake: make it loud, but keep serving
            tb = traceback.format_exc()
            self.server_errors.append(tb)
            print(f"[{type(self).__name__}] internal error:\n{tb}", file=sys.stderr)
            if not h._fake_started:
                try:
                    self.send_json(h, 500, self.internal_error_body(exc))
                except OSError:
                    pass
            h.close_connection = True
        finally:
            if gen:
                with self._cond:
                    self.in_flight -= 1
                    self._cond.notify_all()

    def route(self, req: Request) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def internal_error_body(self, exc: Exception) -> Any:
        return {"error": f"fake server error: {exc!r}"}

    # ---- response helpers --------------------------------------------------------

    def send_bytes(
        self, h: _Handler, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        h._fake_started = True
        h.send_response(status)
        all_headers = {"content-type": content_type, **_lower(headers), "content-length": str(len(body))}
        for k, v in all_headers.items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def send_json(self, h: _Handler, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(h, status, dumps(obj), "application/json", headers)

    def send_text(self, h: _Handler, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(h, status, text.encode(), "text/plain; charset=utf-8", headers)

    def chunked(self, h: _Handler, status: int, content_type: str, headers: dict[str, str] | None = None) -> ChunkedWriter:
        return ChunkedWriter(h, status, content_type, headers or {})

    def drop(self, h: _Handler) -> None:
        """Close the connection without sending a byte."""
        h.close_connection = True
        h._fake_started = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def apply_delay_and_drop(self, h: _Handler, reply: Reply) -> bool:
        """Honour ``reply.delay`` / ``reply.drop``. Returns False when the request must not be answered."""
        if reply.delay > 0 and self._stop_event.wait(reply.delay):
            self.drop(h)  # server stopping: give up on the answer
            return False
        if reply.drop:
            self.drop(h)
            return False
        return True


def _read_chunked(rfile: Any) -> bytes:
    out = bytearray()
    while True:
        line = rfile.readline()
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(out)
        out += rfile.read(size)
        rfile.readline()
