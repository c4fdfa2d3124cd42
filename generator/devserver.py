"""The development HTTP server behind `site serve` and `site watch`.

It serves a directory the way a static host would: pretty URLs (`/metal/` serves
`metal/index.html`, `/metal` redirects to `/metal/`), `404.html` with status 404, the right
content types, no directory listings, and nothing outside the directory (no `..`, no encoded
`..`, no symlink leaving it).

With live reload on (`site watch`) every HTML *response* (never a file on disk) gets a small
script before `</body>` that listens on a Server-Sent Events stream (`/__site/events`) and
reloads the page when an event names it. `DevServer.set_error()` replaces every HTML response
with an overlay page naming file, line and message of each problem until `clear_error()`.
Overlay responses have status 500, always.
"""

from __future__ import annotations

import errno
import html
import json
import mimetypes
import os
import queue
import shutil
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from .errors import InputError, Problem, SiteError

EVENTS_PATH = "/__site/events"
KEEPALIVE_SECONDS = 15.0  # an SSE comment this often keeps proxies and browsers from timing out
RETRY_MS = 500  # how soon a browser reconnects to the event stream after losing it
PORT_TRIES = 20  # with the default port taken, how many following ports to try

# Files whose change does not concern any open page (no page loads them).
_NO_RELOAD = {"sitemap.xml", "robots.txt"}

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".jsonld": "application/ld+json",
    ".webmanifest": "application/manifest+json",
    ".map": "application/json",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".pdf": "application/pdf",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".wasm": "application/wasm",
}


class PortInUse(InputError):
    """The port asked for with --port is taken (exit code 2)."""


def content_type(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    if ext in CONTENT_TYPES:
        return CONTENT_TYPES[ext]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def url_key(relpath: str) -> str:
    """The URL path a file in the served directory answers at: `metal/a/index.html` -> `/metal/a/`."""
    rel = relpath.replace(os.sep, "/").lstrip("/")
    if rel == "index.html":
        return "/"
    if rel.endswith("/index.html"):
        return "/" + rel[: -len("index.html")]
    return "/" + rel


def _is_html(name: str) -> bool:
    return name.lower().endswith((".html", ".htm"))


def _problems_of(error: Any) -> tuple[str, list[Problem]]:
    """A headline and a list of problems out of whatever set_error() was given."""
    if isinstance(error, SiteError):
        head = Exception.__str__(error) or type(error).__name__
        return head, list(error.problems)
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}", []
    if isinstance(error, Problem):
        return "Build failed", [error]
    if isinstance(error, str):
        return error, []
    if isinstance(error, Iterable):
        items = list(error)
        problems = [p if isinstance(p, Problem) else Problem("", str(p)) for p in items]
        return "Build failed", problems
    return str(error), []


# --- pages the server makes itself -----------------------------------------------------------

_RELOAD_JS = """(function(){
if(!window.EventSource)return;
var keys=%(keys)s,p=location.pathname.replace(/index\\.html$/,""),es=null;
if(keys.indexOf(p)<0)keys.push(p);
var q="boot=%(boot)s&gen=%(gen)d";
for(var i=0;i<keys.length;i++)q+="&k="+encodeURIComponent(keys[i]);
function open(){
if(es)return;
es=window.__siteReload=new EventSource("%(events)s?"+q);
es.addEventListener("reload",function(e){
var d=JSON.parse(e.data);
for(var i=0;i<d.length;i++){if(d[i]==="*"||keys.indexOf(d[i])>=0){es.close();location.reload();return;}}
});
}
function close(){if(es){es.close();es=null;}}
/* hidden tabs let go of their stream (browsers allow few connections per host) and catch up on
   return: the server answers a reconnect with a reload if this page changed meanwhile */
document.addEventListener("visibilitychange",function(){document.hidden?close():open();});
addEventListener("pagehide",close);
addEventListener("pageshow",function(){if(!document.hidden)open();});
if(!document.hidden)open();
})();"""

_OVERLAY = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Build error</title>
<style>
body{margin:0;background:#1d1f21;color:#e8e8e8;font:15px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
main{max-width:60rem;margin:0 auto;padding:2rem 1.5rem}
h1{color:#ff6b6b;font-size:1.3rem;margin:0 0 .5rem}
p.head{white-space:pre-wrap;margin:0 0 1.5rem}
ol{padding-left:1.5rem}li{margin:0 0 1rem}
.where{color:#ffd166}.field{color:#8ecae6}.msg{white-space:pre-wrap;display:block}
footer{color:#999;font-size:13px;margin-top:2rem}
a{color:#8ecae6}
</style></head>
<body><main id="site-build-error">
<h1>Build error</h1>
<p class="head">%(head)s</p>
%(items)s
<footer>The server keeps running: fix the file and this page reloads by itself.
The last good build of %(path)s is still there: <a href="%(bypass)s">open it anyway</a>.</footer>
</main></body></html>
"""

_NOT_FOUND = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>404 Not Found</title></head>
<body><h1>404 Not Found</h1><p>There is nothing at this address.</p></body></html>
"""

BYPASS_PARAM = "__site_ignore_error"


def _overlay_html(head: str, problems: list[Problem], raw_path: str) -> str:
    path = "/" + raw_path.lstrip("/")  # never `//host`: the bypass link stays on this server
    items = []
    for p in problems:
        where = html.escape(p.file or "") + (f":{p.line}" if p.line else "")
        field = f' <span class="field">[{html.escape(p.field)}]</span>' if p.field else ""
        items.append(
            f'<li><span class="where">{where}</span>{field}'
            f'<span class="msg">{html.escape(p.message)}</span></li>'
        )
    return _OVERLAY % {
        "head": html.escape(head),
        "items": "<ol>\n" + "\n".join(items) + "\n</ol>" if items else "",
        "path": html.escape(unquote(path)),
        "bypass": html.escape(path + "?" + BYPASS_PARAM + "=1"),
    }


def inject(body: bytes, script: str) -> bytes:
    """Put `<script>` before the last `</body>` (case-insensitive), or at the end."""
    tag = b"<script>" + script.encode() + b"</script>"
    at = body.lower().rfind(b"</body>")
    if at < 0:
        return body + tag
    return body[:at] + tag + body[at:]


# --- the server ------------------------------------------------------------------------------


class _Client:
    def __init__(self) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # TIME_WAIT only: a port with a live listener still fails to bind
    devserver: DevServer


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def version_string(self) -> str:
        return "site-devserver"

    # -- plumbing --
    def setup(self) -> None:
        super().setup()
        self.server.devserver._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.devserver._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log = self.server.devserver.log
        if log is not None:
            log(f"{self.address_string()} {format % args}")

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _send(self, status: int, body: bytes, ctype: str, head: bool,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    # -- routing --
    def _serve(self, head: bool) -> None:
        dev = self.server.devserver
        raw = self.path
        if raw.startswith(("http://", "https://")):  # absolute-form request target
            rest = raw.split("://", 1)[1]
            raw = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        raw_path, _, query = raw.partition("?")
        raw_path = raw_path.split("#", 1)[0]

        if dev.live_reload and raw_path == EVENTS_PATH:
            self._events(query, head)
            return

        prefix = dev.base_path.rstrip("/")  # "" or e.g. "/site": the path part of base_url
        if prefix:
            if raw_path in ("/", prefix):  # the site's home is at the base path, as on its host
                self._send(302 if raw_path == "/" else 301, b"", "text/html; charset=utf-8", head,
                           {"Location": dev.base_path + (f"?{query}" if query else "")})
                return
            if raw_path.startswith(prefix + "/"):
                target = dev._resolve(raw_path[len(prefix):])
            else:
                target = ("missing", "", None)
        else:
            target = dev._resolve(raw_path)
        if target[0] == "redirect":
            location = prefix + target[1] + (f"?{query}" if query else "")
            self._send(301, b"", "text/html; charset=utf-8", head, {"Location": location})
            return
        if target[0] == "file":
            rel, full = target[1], target[2]
            status = 200
        else:
            rel, full = "404.html", dev._file_in_root("404.html")
            status = 404

        bypass = BYPASS_PARAM in parse_qs(query)
        error = dev._error
        if error is not None and not bypass and (full is None or _is_html(rel)):
            head_msg, problems = error
            page = _overlay_html(head_msg, problems, raw_path)
            body = page.encode()
            if dev.live_reload:
                body = inject(body, dev._script(["*"]))
            self._send(500, body, "text/html; charset=utf-8", head)
            return

        if full is None:  # no 404.html: a built-in page
            body = _NOT_FOUND.encode()
            if dev.live_reload:
                body = inject(body, dev._script([dev.key(rel)]))
            self._send(404, body, "text/html; charset=utf-8", head)
            return

        ctype = content_type(rel)
        if _is_html(rel):
            try:
                body = Path(full).read_bytes()
            except OSError:
                self._send(404, _NOT_FOUND.encode(), "text/html; charset=utf-8", head)
                return
            if dev.live_reload:
                body = inject(body, dev._script([dev.key(rel)]))
            self._send(status, body, ctype, head)
            return

        try:
            f = open(full, "rb")  # noqa: SIM115 - closed below
        except OSError:
            self._send(404, _NOT_FOUND.encode(), "text/html; charset=utf-8", head)
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if not head:
                shutil.copyfileobj(f, self.wfile)

    # -- Server-Sent Events --
    def _events(self, query: str, head: bool) -> None:
        dev = self.server.devserver
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        params = parse_qs(query)
        client = dev._subscribe()
        try:
            self.wfile.write(f"retry: {RETRY_MS}\n: connected\n\n".encode())
            self.wfile.flush()
            missed = dev._missed(params)
            if missed:
                self.wfile.write(_event(missed).encode())
                self.wfile.flush()
            while True:
                try:
                    item = client.queue.get(timeout=dev.keepalive)
                except queue.Empty:
                    item = ": keep-alive\n\n"
                if item is None:
                    return
                self.wfile.write(item.encode())
                self.wfile.flush()
        except OSError:
            return
        finally:
            dev._unsubscribe(client)


def _event(keys: list[str]) -> str:
    return "event: reload\ndata: " + json.dumps(keys) + "\n\n"


class DevServer:
    """A static file server with optional live reload and error overlay; see the module doc."""

    def __init__(self, root_dir: Path, host: str = "127.0.0.1", port: int = 8000,
                 live_reload: bool = False, port_explicit: bool = False,
                 log: Callable[[str], None] | None = None, base_path: str = "/"):
        self.root_dir = Path(root_dir)
        # The path part of the site's base_url ("/" or "/site/"): a site built for
        # https://example.github.io/site/ links to /site/...; it is served there, as its host would.
        self.base_path = "/" + base_path.strip("/") + "/" if base_path.strip("/") else "/"
        self.host = host
        self.port = port
        self.live_reload = live_reload
        self.port_explicit = port_explicit
        self.log = log  # request log sink; None = quiet
        self.keepalive = KEEPALIVE_SECONDS
        self.origin: str | None = None  # http://host:port once started
        self.port_note: str | None = None  # set when the default port was taken and another used
        self._boot = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._clients: set[_Client] = set()
        self._connections: set[socket.socket] = set()
        self._gen = 0
        self._changed: dict[str, int] = {}
        self._error: tuple[str, list[Problem]] | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --
    def start(self) -> str:
        """Bind, start serving in a background thread, return the URL."""
        cls = _HTTPServer6 if ":" in self.host else _HTTPServer
        if self.port_explicit or self.port == 0:
            candidates = [self.port]
        else:
            candidates = [p for p in range(self.port, self.port + PORT_TRIES) if p <= 65535]
        httpd = None
        for port in candidates:
            try:
                httpd = cls((self.host, port), _Handler)
                break
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    if self.port_explicit or port == candidates[-1]:
                        first = candidates[0]
                        if self.port_explicit:
                            msg = (f"port {first} on {self.host} is already in use: stop what is "
                                   f"using it or choose another port with --port")
                        else:
                            msg = (f"ports {first}-{port} on {self.host} are all in use: "
                                   f"choose a free one with --port")
                        raise PortInUse(msg) from None
                    continue
                if e.errno == errno.EACCES:
                    raise InputError(f"not allowed to listen on {self.host}:{port} "
                                     f"(ports below 1024 need privileges): choose another with --port") from None
                raise InputError(f"cannot listen on {self.host}:{port}: {e.strerror or e}") from None
            except socket.gaierror as e:
                raise InputError(f"cannot listen on {self.host!r}: {e.strerror or e}") from None
        assert httpd is not None
        httpd.devserver = self
        self._httpd = httpd
        bound = httpd.server_address[1]
        if bound != self.port and self.port != 0:
            self.port_note = f"port {self.port} is in use, using {bound} instead"
        self.port = bound
        shown = self.host
        if shown in ("0.0.0.0", "::", ""):
            shown = "127.0.0.1" if shown != "::" else "::1"
        if ":" in shown:
            shown = f"[{shown}]"
        self.origin = f"http://{shown}:{bound}"
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="site-devserver", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving: end event streams, close open connections, release the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        with self._lock:
            clients = list(self._clients)
            conns = list(self._connections)
        for c in clients:
            c.queue.put(None)
        httpd.shutdown()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> DevServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str | None:
        """Where the site is served once started: origin + base path."""
        return self.origin + self.base_path if self.origin else None

    def key(self, relpath: str) -> str:
        """The URL path of a served file, base path included: `metal/a/index.html` -> `/site/metal/a/`."""
        return self.base_path.rstrip("/") + url_key(relpath)

    # -- live reload --
    def notify(self, changed_paths: Iterable[str]) -> list[str]:
        """Tell open pages that these files (relative to the served dir) changed; returns the keys."""
        keys: list[str] = []
        for p in changed_paths:
            rel = str(p).replace(os.sep, "/").lstrip("/")
            if _is_html(rel):
                key = self.key(rel)
            elif rel in _NO_RELOAD:
                continue
            else:
                key = "*"  # css, js, images...: any page may use them
            if key not in keys:
                keys.append(key)
        if "*" in keys:
            keys = ["*"]
        if keys:
            self._push(keys)
        return keys

    def set_error(self, error: Any) -> None:
        """Serve an overlay for every HTML response until clear_error(); reload open pages."""
        self._error = _problems_of(error)
        self._push(["*"])

    def clear_error(self) -> None:
        was = self._error is not None
        self._error = None
        if was:
            self._push(["*"])

    @property
    def has_error(self) -> bool:
        return self._error is not None

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)

    def _push(self, keys: list[str]) -> None:
        message = _event(keys)
        with self._lock:
            self._gen += 1
            for k in keys:
                self._changed[k] = self._gen
            clients = list(self._clients)
        for c in clients:
            c.queue.put(message)

    def _script(self, keys: list[str]) -> str:
        return _RELOAD_JS % {"keys": json.dumps(keys).replace("</", "<\\/"), "boot": self._boot,
                             "gen": self._gen, "events": EVENTS_PATH}

    def _missed(self, params: dict[str, list[str]]) -> list[str]:
        """What a page loaded before a change, or from an earlier server, must reload for."""
        if "gen" not in params:
            return []
        if params.get("boot", [""])[0] != self._boot:
            return ["*"]
        try:
            gen = int(params["gen"][0])
        except ValueError:
            return ["*"]
        with self._lock:
            if self._changed.get("*", 0) > gen:
                return ["*"]
            return [k for k in params.get("k", []) if self._changed.get(k, 0) > gen]

    def _subscribe(self) -> _Client:
        c = _Client()
        with self._lock:
            self._clients.add(c)
        return c

    def _unsubscribe(self, c: _Client) -> None:
        with self._lock:
            self._clients.discard(c)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- files --
    def _file_in_root(self, rel: str) -> str | None:
        root = os.path.realpath(self.root_dir)
        full = os.path.realpath(os.path.join(root, rel))
        if (full == root or full.startswith(root + os.sep)) and os.path.isfile(full):
            return full
        return None

    def _resolve(self, raw_path: str) -> tuple[str, str, str | None]:
        """("file", rel, full) | ("redirect", location, None) | ("missing", "", None)."""
        missing = ("missing", "", None)
        try:
            path = unquote(raw_path, errors="strict")
        except UnicodeDecodeError:
            return missing
        if not path.startswith("/") or "\x00" in path or "\\" in path:
            return missing
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") for p in parts):
            return missing
        root = os.path.realpath(self.root_dir)
        full = os.path.realpath(os.path.join(root, *parts)) if parts else root
        if not (full == root or full.startswith(root + os.sep)):
            return missing  # a symlink leading out of the served directory
        rel = "/".join(parts)
        if os.path.isdir(full):
            index = self._file_in_root(f"{rel}/index.html" if rel else "index.html")
            if index is None:
                return missing  # no directory listings
            if not path.endswith("/"):
                return ("redirect", "/" + "/".join(quote(p) for p in parts) + "/", None)
            return ("file", f"{rel}/index.html" if rel else "index.html", index)
        if os.path.isfile(full) and not path.endswith("/"):
            return ("file", rel, full)
        if parts and not path.endswith("/"):
            html_file = self._file_in_root(rel + ".html")  # /about -> about.html, as hosts do
            if html_file is not None:
                return ("file", rel + ".html", html_file)
        return missing


def base_path_for(build_dir: Path) -> str:
    """The path part of base_url of the site whose output folder is build_dir ("/" if unknown)."""
    build_dir = Path(build_dir).resolve()
    for root in list(build_dir.parents)[:4]:
        if (root / "site.yaml").is_file():
            try:
                from .config import load_config

                config = load_config(root)
            except SiteError:  # a broken site.yaml: `site build` says what is wrong
                return "/"
            if (root / config.output_dir).resolve() == build_dir:
                return config.base_path
            return "/"
    return "/"


def _display(path: Path) -> str:
    try:
        shown = os.path.relpath(path)
    except ValueError:
        shown = str(path)
    if shown.startswith(".."):
        shown = str(path)
    return shown.rstrip("/") + "/"


def install_sigterm() -> Callable[[], None]:
    """Turn SIGTERM into KeyboardInterrupt (main thread only), so both stop cleanly."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, previous)


def run_serve(build_dir: Path, host: str = "127.0.0.1", port: int = 8000,
              port_explicit: bool = False, out: Callable[[str], None] = print,
              stop_event: threading.Event | None = None, base_path: str | None = None) -> None:
    """`site serve`: serve build_dir until Ctrl-C (or stop_event).

    base_path: where the site lives on its host (the path of base_url); by default read from the
    site.yaml whose output folder build_dir is.
    """
    build_dir = Path(build_dir)
    if not build_dir.is_dir():
        raise InputError(f"{_display(build_dir)} does not exist: run `site build` first")
    if base_path is None:
        base_path = base_path_for(build_dir)
    server = DevServer(build_dir, host=host, port=port, live_reload=False, port_explicit=port_explicit,
                       base_path=base_path)
    url = server.start()
    restore = install_sigterm()
    stop = stop_event or threading.Event()
    try:
        if server.port_note:
            out(server.port_note)
        out(f"Serving {_display(build_dir)} at {url} (Ctrl-C to stop)")
        _flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        restore()
    out("Stopped.")


def _flush() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
