"""The dev server: static hosting rules, live reload over SSE, the error overlay, ports."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from generator.devserver import EVENTS_PATH, DevServer, PortInUse, url_key
from generator.errors import InputError, Problem
from tests.conftest import deliver_sigint

REPO = Path(__file__).resolve().parents[1]

PAGE = b"<!doctype html><html><head><title>Al</title></head><body><h1>Aluminum</h1></body></html>\n"
SECRET = b"TOP-SECRET-OUTSIDE-ROOT"


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    root = tmp_path / "build"
    (root / "metal" / "aluminum").mkdir(parents=True)
    (root / "emptydir").mkdir()
    (root / "assets").mkdir()
    (root / "index.html").write_bytes(b"<html><body>home</body></html>")
    (root / "metal" / "index.html").write_bytes(b"<html><body>metal category</body></html>")
    (root / "metal" / "aluminum" / "index.html").write_bytes(PAGE)
    (root / "404.html").write_bytes(b"<html><body>custom not found page</body></html>")
    (root / "about.html").write_bytes(b"<html><body>about page</body></html>")
    files = {
        "assets/style.css": b"body{color:red}",
        "assets/app.js": b"console.log(1)",
        "sitemap.xml": b"<?xml version='1.0'?><urlset/>",
        "data.json": b"{}",
        "robots.txt": b"User-agent: *",
        "assets/icon.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "assets/img.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        "favicon.ico": b"\x00\x00\x01\x00",
        "assets/font.woff2": b"wOF2....",
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "index.html").write_bytes(SECRET)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    os.symlink(outside / "secret.txt", root / "link.txt")
    os.symlink(outside, root / "linkdir")
    os.symlink(root / "about.html", root / "inside-link.html")
    return root


@pytest.fixture()
def server(site: Path):
    srv = DevServer(site, port=0)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture()
def live(site: Path):
    srv = DevServer(site, port=0, live_reload=True)
    srv.start()
    yield srv
    srv.stop()


def raw(srv: DevServer, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Send the request target exactly as written (httpx would normalise `..` away)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_pretty_urls_and_redirects(server: DevServer) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=5) as c:
        r = c.get("/metal/aluminum/")
        assert r.status_code == 200 and r.content == PAGE
        assert r.headers["cache-control"] == "no-store"
        assert c.get("/").text == "<html><body>home</body></html>"
        assert c.get("/metal/aluminum/index.html").content == PAGE
        r = c.get("/metal")
        assert r.status_code == 301 and r.headers["location"] == "/metal/"
        r = c.get("/metal/aluminum?x=1")
        assert r.status_code == 301 and r.headers["location"] == "/metal/aluminum/?x=1"
        assert c.get("/about").text == "<html><body>about page</body></html>"  # as hosts do
        assert c.get("/about.html").status_code == 200
        assert c.get("/inside-link.html").status_code == 200  # a symlink inside the root is fine
    # `//metal` must not become an open redirect to the host "metal"
    status, headers, _ = raw(server, "//metal")
    assert status == 301 and headers["location"] == "/metal/"


def test_404_page_and_no_listings(server: DevServer) -> None:
    with httpx.Client(base_url=server.url, timeout=5) as c:
        for path in ["/nope", "/nope/", "/metal/nope/", "/emptydir/", "/emptydir", "/assets/",
                     "/about.html/", "/metal/aluminum/index.html/x"]:
            r = c.get(path)
            assert r.status_code == 404, path
            assert "custom not found page" in r.text, path
            assert r.headers["content-type"].startswith("text/html")
    (server.root_dir / "404.html").unlink()
    status, _, body = raw(server, "/nope")
    assert status == 404 and b"404" in body


def test_content_types_and_head(server: DevServer) -> None:
    expected = {
        "/": "text/html; charset=utf-8",
        "/assets/style.css": "text/css; charset=utf-8",
        "/assets/app.js": "text/javascript; charset=utf-8",
        "/sitemap.xml": "application/xml",
        "/data.json": "application/json",
        "/robots.txt": "text/plain; charset=utf-8",
        "/assets/icon.svg": "image/svg+xml",
        "/assets/img.png": "image/png",
        "/favicon.ico": "image/x-icon",
        "/assets/font.woff2": "font/woff2",
    }
    with httpx.Client(base_url=server.url, timeout=5) as c:
        for path, ctype in expected.items():
            r = c.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"] == ctype, path
            assert r.headers["x-content-type-options"] == "nosniff"
        png = c.get("/assets/img.png")
        assert png.content == (server.root_dir / "assets/img.png").read_bytes()
        h = c.head("/metal/aluminum/")
        assert h.status_code == 200 and h.content == b""
        assert int(h.headers["content-length"]) == len(PAGE)
        h = c.head("/assets/img.png")
        assert int(h.headers["content-length"]) == len(png.content) and h.content == b""
        assert c.head("/nope").status_code == 404
        assert c.post("/").status_code == 501  # a static host answers GET and HEAD only


@pytest.mark.parametrize("target", [
    "/../secret.txt",
    "/../outside/secret.txt",
    "/metal/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/outside/secret.txt",
    "/metal/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/%2e%2e%5csecret.txt",
    "/..\\secret.txt",
    "/%252e%252e/secret.txt",
    "/link.txt",
    "/linkdir/secret.txt",
    "/linkdir/",
    "/linkdir",
    "/%00",
    "/secret.txt%00.html",
    "/%ff%fe",
    "//etc/passwd",
    "/etc/passwd",
    "http://evil.example/../secret.txt",
])
def test_traversal_rejected(server: DevServer, target: str) -> None:
    status, _, body = raw(server, target)
    assert status == 404, target
    assert SECRET not in body


def test_reload_script_only_in_served_html(live: DevServer, server: DevServer, site: Path) -> None:
    on_disk = (site / "metal/aluminum/index.html").read_bytes()
    r = httpx.get(live.url + "metal/aluminum/", timeout=5)
    body = r.content
    assert EVENTS_PATH.encode() in body
    assert body.index(EVENTS_PATH.encode()) < body.rindex(b"</body>")
    assert int(r.headers["content-length"]) == len(body)
    assert (site / "metal/aluminum/index.html").read_bytes() == on_disk == PAGE  # disk unchanged
    assert httpx.get(live.url + "assets/style.css", timeout=5).content == b"body{color:red}"
    r404 = httpx.get(live.url + "nope/", timeout=5)
    assert r404.status_code == 404 and EVENTS_PATH.encode() in r404.content
    # without live reload (site serve) nothing is injected
    assert httpx.get(server.url + "metal/aluminum/", timeout=5).content == PAGE


def test_url_keys() -> None:
    assert url_key("index.html") == "/"
    assert url_key("metal/aluminum/index.html") == "/metal/aluminum/"
    assert url_key("about.html") == "/about.html"


class SSE:
    """A minimal Server-Sent Events reader with a deadline."""

    def __init__(self, srv: DevServer, query: str = ""):
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        target = EVENTS_PATH + (f"?{query}" if query else "")
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0]
        assert b"text/event-stream" in head
        first = self.block()
        assert "retry:" in first

    def _until(self, sep: bytes, deadline: float = 5.0) -> bytes:
        end = time.monotonic() + deadline
        while sep not in self.buf:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("stream closed")
            self.buf += chunk
        out, self.buf = self.buf.split(sep, 1)
        return out

    def block(self, deadline: float = 5.0) -> str:
        return self._until(b"\n\n", deadline).decode()

    def next_event(self, deadline: float = 5.0) -> tuple[str, object]:
        while True:
            blk = self.block(deadline)
            fields = dict(line.split(": ", 1) for line in blk.split("\n") if line and not line.startswith(":"))
            if "data" in fields:
                return fields.get("event", "message"), json.loads(fields["data"])

    def close(self) -> None:
        self.sock.close()


def test_sse_event_on_notify(live: DevServer) -> None:
    es = SSE(live)
    try:
        assert live.notify(["metal/aluminum/index.html", "sitemap.xml"]) == ["/metal/aluminum/"]
        assert es.next_event() == ("reload", ["/metal/aluminum/"])
        assert live.notify(["sitemap.xml", "robots.txt"]) == []  # nothing a page shows
        assert live.notify(["assets/style.css", "index.html"]) == ["*"]  # any page may use the css
        assert es.next_event() == ("reload", ["*"])
    finally:
        es.close()


def test_sse_keepalive_and_stop(site: Path) -> None:
    srv = DevServer(site, port=0, live_reload=True)
    srv.keepalive = 0.05
    srv.start()
    es = SSE(srv)
    try:
        assert es.block().startswith(": keep-alive")
        t0 = time.monotonic()
        srv.stop()  # ends open event streams instead of hanging on them
        assert time.monotonic() - t0 < 3
        with pytest.raises((EOFError, OSError)):
            for _ in range(100):
                es.block(deadline=2)
    finally:
        es.close()


def test_sse_catches_up_on_missed_changes(live: DevServer) -> None:
    """A page served before a change whose event stream connects after it still reloads."""
    page = httpx.get(live.url + "metal/aluminum/", timeout=5).text
    boot = page.split("boot=")[1].split("&")[0]
    gen = int(page.split("gen=")[1].split('"')[0])
    live.notify(["metal/aluminum/index.html"])
    es = SSE(live, f"boot={boot}&gen={gen}&k=%2Fmetal%2Faluminum%2F")
    try:
        assert es.next_event() == ("reload", ["/metal/aluminum/"])
    finally:
        es.close()
    es = SSE(live, f"boot={boot}&gen={gen}&k=%2Fmetal%2F")  # another page: nothing to catch up
    es.close()
    es = SSE(live, f"boot=another-server&gen=0&k=%2F")  # the server restarted meanwhile
    try:
        assert es.next_event() == ("reload", ["*"])
    finally:
        es.close()


def test_error_overlay(live: DevServer) -> None:
    es = SSE(live)
    try:
        err = InputError("invalid input", [
            Problem("materials/metal/aluminum.yaml", "mapping values are not allowed here", line=4),
            Problem("layouts/material.html", "unexpected '}' <script>alert(1)</script>", line=12,
                    field="template"),
        ])
        live.set_error(err)
        assert es.next_event() == ("reload", ["*"])
        with httpx.Client(base_url=live.url, timeout=5, follow_redirects=False) as c:
            for path in ["/metal/aluminum/", "/", "/nope/", "/about"]:
                r = c.get(path)
                assert r.status_code == 500, path
                assert "materials/metal/aluminum.yaml:4" in r.text
                assert "mapping values are not allowed here" in r.text
                assert "layouts/material.html:12" in r.text and "[template]" in r.text
                assert "<script>alert(1)" not in r.text and "&lt;script&gt;alert(1)" in r.text
                assert EVENTS_PATH in r.text  # the overlay reloads itself when fixed
            assert c.get("/assets/style.css").status_code == 200  # assets are still served
            assert c.get("/metal").status_code == 301
            assert c.get("/metal/aluminum/?__site_ignore_error=1").status_code == 200
            assert 'href="/metal/aluminum/?__site_ignore_error=1"' in c.get("/metal/aluminum/").text
            _, _, body = raw(live, "//evil.example/x")
            assert b'href="/evil.example/x?' in body and b'href="//' not in body
            live.set_error("plain message: boom")
            assert "plain message: boom" in c.get("/").text
            live.clear_error()
            assert es.next_event() == ("reload", ["*"])
            assert es.next_event() == ("reload", ["*"])
            r = c.get("/metal/aluminum/")
            assert r.status_code == 200 and "Aluminum" in r.text and "Build error" not in r.text
    finally:
        es.close()


def test_base_path(site: Path) -> None:
    """A site built for https://host/site/ links to /site/...: it is served under /site/."""
    srv = DevServer(site, port=0, live_reload=True, base_path="site")
    try:
        url = srv.start()
        assert srv.base_path == "/site/" and url == f"http://127.0.0.1:{srv.port}/site/"
        with httpx.Client(base_url=srv.origin, timeout=5, follow_redirects=False) as c:
            r = c.get("/site/metal/aluminum/")
            assert r.status_code == 200 and "Aluminum" in r.text
            assert '["/site/metal/aluminum/"]' in r.text  # the page's reload key has the prefix
            assert c.get("/site/assets/style.css").text == "body{color:red}"
            assert c.get("/site/metal").headers["location"] == "/site/metal/"
            assert c.get("/site").headers["location"] == "/site/"
            r = c.get("/")
            assert r.status_code == 302 and r.headers["location"] == "/site/"
            r = c.get("/metal/aluminum/")  # outside the base path: the site's 404 page
            assert r.status_code == 404 and "custom not found page" in r.text
            assert c.get("/sitex/metal/").status_code == 404
        assert srv.notify(["metal/aluminum/index.html"]) == ["/site/metal/aluminum/"]
    finally:
        srv.stop()


def test_base_path_for(tmp_path: Path) -> None:
    from generator.devserver import base_path_for

    (tmp_path / "site.yaml").write_text("title: T\nbase_url: https://example.github.io/proj/\n"
                                        "categories:\n  metal: {title: Metals}\n")
    (tmp_path / "build").mkdir()
    assert base_path_for(tmp_path / "build") == "/proj/"
    assert base_path_for(tmp_path / "elsewhere") == "/"  # not the site's output folder
    (tmp_path / "site.yaml").write_text("title: [\n")
    assert base_path_for(tmp_path / "build") == "/"


def _listening_socket() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_taken_port_explicit_is_a_clear_error(site: Path) -> None:
    s, port = _listening_socket()
    try:
        srv = DevServer(site, port=port, port_explicit=True)
        with pytest.raises(PortInUse) as exc:
            srv.start()
        assert isinstance(exc.value, InputError) and exc.value.exit_code == 2
        assert f"port {port}" in str(exc.value) and "already in use" in str(exc.value)
        assert "--port" in str(exc.value)
    finally:
        s.close()


def test_taken_default_port_picks_next(site: Path) -> None:
    s, port = _listening_socket()
    srv = DevServer(site, port=port, port_explicit=False)
    try:
        url = srv.start()
        assert srv.port != port and url == f"http://127.0.0.1:{srv.port}/"
        assert srv.port_note == f"port {port} is in use, using {srv.port} instead"
        assert httpx.get(url, timeout=5).status_code == 200
    finally:
        srv.stop()
        s.close()


def test_stop_releases_port(site: Path) -> None:
    srv = DevServer(site, port=0)
    srv.start()
    port = srv.port
    httpx.get(srv.url, timeout=5)
    srv.stop()
    again = DevServer(site, port=port, port_explicit=True)
    again.start()
    again.stop()


def test_run_serve_subprocess(site: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from generator.devserver import run_serve; "
        "run_serve(Path(sys.argv[1]), '127.0.0.1', 0, True)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(site)], cwd=site.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=deliver_sigint)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Serving build/ at http://127.0.0.1:") and line.rstrip().endswith("/ (Ctrl-C to stop)")
        url = line.split(" at ")[1].split(" ")[0]
        assert httpx.get(url + "metal/aluminum/", timeout=5).content == PAGE
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Stopped." in out and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_serve_missing_dir(tmp_path: Path) -> None:
    from generator.devserver import run_serve

    with pytest.raises(InputError, match="run `site build` first"):
        run_serve(tmp_path / "build", port=0)
