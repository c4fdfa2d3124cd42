"""`site watch`: rebuild on change, one rebuild per burst, no rebuild loops, errors in the browser.

Two layers:
- in-process `run_watch` with a small stand-in build function (the watch loop's own logic, with
  a build that also writes into content/components/ as the real one does);
- `site watch` subprocesses with the real engine on a small site the tests write.
Every wait polls with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
import pytest
import yaml

from generator.devserver import PortInUse
from generator.errors import InputError, Problem
from generator.watch import SiteFilter, describe, run_watch
from tests.conftest import deliver_sigint

REPO = Path(__file__).resolve().parents[1]
SITE_BIN = Path(sys.executable).parent / "site"
DEADLINE = 15.0


def poll(check: Callable[[], object], deadline: float = DEADLINE, what: str = "condition") -> object:
    """Call check() until it returns something truthy; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    last_exc: Exception | None = None
    while time.monotonic() < end:
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, OSError) as exc:
            last_exc = exc
        time.sleep(0.01)
    raise AssertionError(f"timed out after {deadline}s waiting for {what} (last error: {last_exc})")


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5)


# --- a small site on disk --------------------------------------------------------------------

LAYOUTS = {
    "base.html": (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ page.title }}</title>\n'
        '<meta name="description" content="{{ page.description }}">'
        '<link rel="canonical" href="{{ page.canonical }}">\n'
        '<link rel="stylesheet" href="{{ \'/assets/site.css\' | url }}"></head>\n'
        "<body>{% block content %}{% endblock %}</body></html>\n"
    ),
    "index.html": '{% extends "base.html" %}{% block content %}<h1>{{ site.title }}</h1>'
                  '{% for c in categories %}<a href="{{ c.url | url }}">{{ c.title }}</a>{% endfor %}'
                  "{% endblock %}\n",
    "category.html": '{% extends "base.html" %}{% block content %}<h1>{{ category.title }}</h1>'
                     '{% for m in materials %}<a href="{{ m.url | url }}">{{ m.name }}</a>{% endfor %}'
                     "{% endblock %}\n",
    "material.html": '{% extends "base.html" %}{% block content %}<h1>{{ material.name }}</h1>'
                     "{% for c in components %}{{ c.html }}{% endfor %}{% endblock %}\n",
    "page.html": '{% extends "base.html" %}{% block content %}{{ content }}{% endblock %}\n',
    "404.html": '{% extends "base.html" %}{% block content %}<h1>Not found</h1>{% endblock %}\n',
}


def material_yaml(name: str, description: str = "A light metal.", density: float = 2.7) -> str:
    return (f"name: {name}\ncategory: metal\ncomponents: [props]\ndescription: {description}\n"
            f"properties:\n  density: {{value: {density}, unit: g/cm³}}\n")


def write_site(root: Path) -> Path:
    """A site with one static component and one material: builds in milliseconds, no LLM."""
    files = {
        "site.yaml": "title: Tiny\nbase_url: https://tiny.example/\ncategories:\n  metal: {title: Metals}\n",
        "materials/metal/aluminum.yaml": material_yaml("Aluminum"),
        "components/props/component.yaml": "kind: static\ninputs: [properties, description]\n"
                                           "template: view.html.j2\n",
        "components/props/view.html.j2": '<p class="desc">{{ material.description }}</p>\n<ul>'
                                         "{% for k, v in material.properties.items() %}"
                                         "<li>{{ k }}: {{ v.value }} {{ v.unit }}</li>{% endfor %}</ul>\n",
        "content/pages/about.md": "---\ntitle: About\ndescription: About us.\n---\nHello.\n",
        "assets/site.css": "body{}\n",
        **{f"layouts/{name}": text for name, text in LAYOUTS.items()},
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def burst(site: Path, n: int) -> None:
    """n new material files landing at once, as a `git checkout` does (prepared aside, then moved
    into place in a tight loop, so a busy machine cannot stretch the burst)."""
    staging = site.parent / "staging"
    staging.mkdir()
    for i in range(n):
        (staging / f"m{i:03d}.yaml").write_text(material_yaml(f"M{i}"))
    for i in range(n):
        os.replace(staging / f"m{i:03d}.yaml", site / f"materials/metal/m{i:03d}.yaml")


# --- in-process: run_watch with a stand-in build ---------------------------------------------


@dataclass
class FakeReport:
    out_dir: Path
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class FakeBuild:
    """Renders materials/**.yaml to build/<category>/<slug>/index.html, writing only what changed,
    and (like the real engine) writes a file under content/components/ on every build."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail_with: Exception | None = None

    def __call__(self, root: Path, frozen: bool, chain: object) -> FakeReport:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        out = root / "build"
        report = FakeReport(out)
        problems = []
        pages: dict[str, str] = {}
        for f in sorted((root / "materials").rglob("*.yaml")):
            rel = f.relative_to(root).as_posix()
            try:
                data = yaml.safe_load(f.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                problems.append(Problem(rel, f"invalid YAML: {getattr(exc, 'problem', exc)}",
                                        mark.line + 1 if mark else None))
                continue
            pages[f"{data['category']}/{f.stem}/index.html"] = (
                f"<html><body><h1>{data['name']}</h1><p>{data.get('description', '')}</p></body></html>")
        if problems:
            raise InputError(f"{len(problems)} problem(s)", problems)
        pages["404.html"] = "<html><body>not found</body></html>"
        for rel, text in pages.items():
            path = out / rel
            if not path.exists() or path.read_text() != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                report.written.append(rel)
        gen = root / "content" / "components" / "props" / "generated.yaml"
        gen.parent.mkdir(parents=True, exist_ok=True)
        gen.write_text(f"build: {self.calls}\n")  # a file the generator writes: never a trigger
        return report


class InProcess:
    """run_watch in a thread; lines it prints collected."""

    def __init__(self, root: Path, build_fn: Callable | None = None, port: int = 0,
                 port_explicit: bool = True):
        self.root = root
        self.lines: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.build = build_fn or FakeBuild()
        self.thread = threading.Thread(target=self._run, args=(port, port_explicit), daemon=True)

    def _run(self, port: int, port_explicit: bool) -> None:
        try:
            run_watch(self.root, "127.0.0.1", port, port_explicit, False, None,
                      out=self.lines.append, stop_event=self.stop, build_fn=self.build)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc

    def __enter__(self) -> InProcess:
        self.thread.start()
        line = poll(lambda: self.error or next((l for l in self.lines if l.startswith("Serving ")), None),
                    what="the server to start")
        if self.error:
            raise self.error
        self.url = re.search(r"at (http://\S+)", line).group(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "run_watch did not stop"

    def rebuilds(self) -> list[str]:
        return [l for l in self.lines if l.startswith("rebuild #")]

    def wait_rebuild(self, n: int) -> str:
        return poll(lambda: next((l for l in self.rebuilds() if l.startswith(f"rebuild #{n} ")), None),
                    what=f"rebuild #{n} (lines: {self.lines})")


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path / "site")


def test_edit_rebuilds_and_serves(site: Path) -> None:
    with InProcess(site) as w:
        page = w.url + "metal/aluminum/"
        assert "<h1>Aluminum</h1>" in get(page).text
        assert "/__site/events" in get(page).text
        (site / "materials/metal/aluminum.yaml").write_text(material_yaml("Aluminium"))
        poll(lambda: "<h1>Aluminium</h1>" in get(page).text, what="the edit to show")
        line = w.wait_rebuild(1)
        assert "(materials/metal/aluminum.yaml)" in line
        assert "1 page written (metal/aluminum/index.html)" in line
    assert w.lines[-1] == "Stopped."
    assert "/__site/events" not in (site / "build/metal/aluminum/index.html").read_text()


def test_broken_yaml_overlay_then_fixed(site: Path) -> None:
    with InProcess(site) as w:
        page = w.url + "metal/aluminum/"
        assert get(page).status_code == 200
        (site / "materials/metal/aluminum.yaml").write_text("name: Aluminum\ncategory: [metal\n")
        r = poll(lambda: (r := get(page)).status_code == 500 and r, what="the overlay")
        assert "materials/metal/aluminum.yaml:" in r.text and "invalid YAML" in r.text
        assert get(w.url + "nope/").status_code == 500  # every page shows it
        assert "failed" in w.wait_rebuild(1) and "materials/metal/aluminum.yaml:" in w.wait_rebuild(1)
        (site / "materials/metal/aluminum.yaml").write_text(material_yaml("Aluminum", "Fixed."))
        poll(lambda: (r := get(page)).status_code == 200 and "Fixed." in r.text, what="the page back")


def test_burst_is_one_rebuild(site: Path) -> None:
    build = FakeBuild()
    with InProcess(site, build) as w:
        calls = build.calls
        burst(site, 100)
        line = w.wait_rebuild(1)
        assert "100 files changed" in line and "100 pages written" in line
        assert get(w.url + "metal/m099/").status_code == 200
        # a later edit is rebuild #2: the burst was exactly one rebuild
        (site / "materials/metal/aluminum.yaml").write_text(material_yaml("Al"))
        assert "(materials/metal/aluminum.yaml)" in w.wait_rebuild(2)
        assert build.calls == calls + 2
        assert len(w.rebuilds()) == 2


def test_generated_and_temp_files_never_trigger(site: Path) -> None:
    (site / ".git").mkdir()
    with InProcess(site) as w:
        for rel in ["content/components/props/aluminum.yaml", "content/components/new/x.yaml",
                    "build/metal/x.html", ".cache/state.json", ".git/index",
                    "materials/metal/.aluminum.yaml.swp", "materials/metal/aluminum.yaml~",
                    "materials/metal/4913", "layouts/.#material.html", "notes.txt"]:
            path = site / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
        (site / "layouts/material.html").write_text(LAYOUTS["material.html"] + "\n")
        line = w.wait_rebuild(1)
        assert "(layouts/material.html)" in line  # the only change that counted
        assert len(w.rebuilds()) == 1


def test_folder_created_while_watching_is_watched(site: Path) -> None:
    shutil.rmtree(site / "assets")
    with InProcess(site) as w:
        (site / "assets").mkdir()
        w.wait_rebuild(1)
        (site / "assets/extra.css").write_text("a{}")
        assert "(assets/extra.css)" in w.wait_rebuild(2)
        (site / "site.yaml").write_text((site / "site.yaml").read_text() + "\n")
        assert "(site.yaml)" in w.wait_rebuild(3)


def test_folder_replaced_while_watching_is_still_watched(site: Path) -> None:
    """A branch switch can remove a whole folder and bring it back: the new one is watched."""
    with InProcess(site) as w:
        os.rename(site / "materials", site.parent / "materials-aside")
        w.wait_rebuild(1)
        os.rename(site.parent / "materials-aside", site / "materials")
        n = poll(lambda: len(w.rebuilds()) >= 2 and len(w.rebuilds()), what="the folder to come back")
        (site / "materials/metal/aluminum.yaml").write_text(material_yaml("Back"))
        assert "(materials/metal/aluminum.yaml)" in w.wait_rebuild(n + 1)
        assert "<h1>Back</h1>" in get(w.url + "metal/aluminum/").text


def test_served_under_base_url_path(site: Path) -> None:
    (site / "site.yaml").write_text((site / "site.yaml").read_text().replace(
        "https://tiny.example/", "https://tiny.example/docs/"))
    with InProcess(site) as w:
        assert w.url.endswith("/docs/")
        assert "<h1>Aluminum</h1>" in get(w.url + "metal/aluminum/").text
        (site / "site.yaml").write_text((site / "site.yaml").read_text().replace("/docs/", "/"))
        w.wait_rebuild(1)
        origin = w.url[: -len("docs/")]
        poll(lambda: f"base_url changed: now serving at {origin}" in w.lines, what="the new base path")
        assert "<h1>Aluminum</h1>" in get(origin + "metal/aluminum/").text


def test_first_build_failing_still_serves(site: Path) -> None:
    build = FakeBuild()
    build.fail_with = InputError("site.yaml has 1 problem(s)",
                                 [Problem("site.yaml", "missing required field 'title'", 1, "title")])
    with InProcess(site, build) as w:
        assert any(l.startswith("build failed in ") and "site.yaml:1 [title]" in l for l in w.lines)
        r = get(w.url)
        assert r.status_code == 500 and "site.yaml:1" in r.text and "missing required field" in r.text
        build.fail_with = None
        (site / "site.yaml").write_text((site / "site.yaml").read_text() + "\n")
        poll(lambda: get(w.url + "metal/aluminum/").status_code == 200, what="the page after the fix")


def test_engine_crash_is_shown_and_survived(site: Path) -> None:
    build = FakeBuild()
    with InProcess(site, build) as w:
        build.fail_with = KeyError("boom")
        (site / "materials/metal/aluminum.yaml").write_text(material_yaml("X"))
        assert "crashed" in w.wait_rebuild(1)
        r = get(w.url + "metal/aluminum/")
        assert r.status_code == 500 and "KeyError" in r.text and "Traceback" in r.text
        build.fail_with = None
        (site / "materials/metal/aluminum.yaml").write_text(material_yaml("Y"))
        poll(lambda: "<h1>Y</h1>" in get(w.url + "metal/aluminum/").text, what="recovery")


def test_frozen_stale_is_a_warning_not_an_overlay(site: Path) -> None:
    """`site watch --frozen`: stale LLM components are listed, the rebuilt pages are served."""
    from generator.errors import FrozenStale

    class FrozenBuild(FakeBuild):
        def __call__(self, root: Path, frozen: bool, chain: object) -> FakeReport:
            super().__call__(root, frozen, chain)
            if self.calls > 1:
                raise FrozenStale("--frozen: 1 LLM component(s) are stale or missing", [
                    Problem("content/components/caption/aluminum.yaml", "stale: field 'name' changed",
                            None, "caption:aluminum")])
            return FakeReport(root / "build")

    with InProcess(site, FrozenBuild()) as w:
        (site / "materials/metal/aluminum.yaml").write_text(material_yaml("Frozen Al"))
        line = w.wait_rebuild(1)
        assert "1 LLM component(s) stale, not regenerated with --frozen (caption/aluminum)" in line
        r = get(w.url + "metal/aluminum/")
        assert r.status_code == 200 and "<h1>Frozen Al</h1>" in r.text


def test_taken_port(site: Path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        build = FakeBuild()
        with pytest.raises(PortInUse, match=f"port {port}"):
            run_watch(site, "127.0.0.1", port, True, out=lambda _: None, build_fn=build)
        assert build.calls == 0  # refused before building
        with InProcess(site, port=port, port_explicit=False) as w:
            assert f"port {port} is in use, using " in "\n".join(w.lines)
            assert f":{port}/" not in w.url
    finally:
        s.close()


def test_not_a_site(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no site.yaml"):
        run_watch(tmp_path, "127.0.0.1", 0, True, out=lambda _: None, build_fn=FakeBuild())


def test_filter_rules(tmp_path: Path) -> None:
    f = SiteFilter(tmp_path)
    ok = ["site.yaml", "materials/metal/a.yaml", "components/c/view.html.j2", "layouts/base.html",
          "content/pages/about.md", "data/authors.yaml", "assets/css/site.css", "materials"]
    no = ["content/components/caption/a.yaml", "build/index.html", ".cache/state.json", ".git/HEAD",
          "materials/.a.yaml.swp", "materials/a.yaml~", "materials/4913", "layouts/.#base.html",
          "README.md", "other/x.yaml", "materials/__pycache__/x.pyc"]
    for rel in ok:
        assert f(None, str(tmp_path / rel)), rel
    for rel in no:
        assert not f(None, str(tmp_path / rel)), rel
    assert not f(None, "/elsewhere/site.yaml")


def test_describe() -> None:
    r = FakeReport(Path("build"), written=["a/index.html"])
    assert describe(r) == "1 page written (a/index.html)"
    r = FakeReport(Path("build"), written=["a/index.html", "b/index.html", "sitemap.xml", "c.css"],
                   removed=["old/index.html"], failures=["caption:x: timeout"])
    assert describe(r) == ("4 files written (a/index.html, b/index.html, sitemap.xml, +1 more), "
                           "1 removed (old/index.html), 1 failed (caption:x: timeout)")
    assert describe(FakeReport(Path("build"))) == "nothing changed"


# --- `site watch` subprocesses with the real engine -----------------------------------------


class SiteWatch:
    """`site watch --root ROOT --port 0` in a subprocess; its output read by a thread."""

    def __init__(self, root: Path, *args: str):
        cmd = [str(SITE_BIN), "watch", "--root", str(root), "--port", "0", *args]
        # faulthandler: a watch that hangs on stop is made to print every thread's stack (SIGABRT)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "PYTHONFAULTHANDLER": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, cwd=root, preexec_fn=deliver_sigint)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        line = poll(lambda: next((l for l in self.lines if l.startswith("Serving ")), None)
                    or (self.proc.poll() is not None and f"exited: {self.lines}"), what="site watch to start")
        assert line.startswith("Serving "), line
        self.url = re.search(r"at (http://\S+)", line).group(1)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def rebuilds(self) -> list[str]:
        return [l for l in self.lines if l.startswith("rebuild #")]

    def wait_rebuild(self, n: int) -> str:
        return poll(lambda: next((l for l in self.rebuilds() if l.startswith(f"rebuild #{n} ")), None),
                    what=f"rebuild #{n} (output: {self.lines})")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            try:
                masks = [l for l in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
                         if l.startswith("Sig")]
            except OSError:
                masks = []
            self.lines.append(f"signal masks: {masks}")
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.reader.join(5)
            stacks = "\n".join(self.lines)
            raise AssertionError(f"site watch did not stop on SIGINT:\n{stacks}") from None
        self.reader.join(5)
        return code


@pytest.fixture()
def watched(site: Path):
    w = SiteWatch(site)
    try:
        yield w
    finally:
        w.stop()


def test_site_watch_edit_error_fix(site: Path, watched: SiteWatch) -> None:
    page = watched.url + "metal/aluminum/"
    assert "<h1>Aluminum</h1>" in get(page).text
    assert get(watched.url + "metal").status_code == 301
    # edit a material: the served page changes
    (site / "materials/metal/aluminum.yaml").write_text(material_yaml("Aluminum", "Edited by the test."))
    poll(lambda: "Edited by the test." in get(page).text, what="the edit to be served")
    assert "metal/aluminum/index.html" in watched.wait_rebuild(1)
    # break it: the overlay names the file and line, the server still answers
    (site / "materials/metal/aluminum.yaml").write_text("name: Aluminum\ncategory: metal\n  bad: [\n")
    r = poll(lambda: (r := get(page)).status_code == 500 and r, what="the overlay")
    assert "materials/metal/aluminum.yaml:" in r.text
    assert re.search(r"materials/metal/aluminum\.yaml:\d+", r.text)
    assert get(watched.url + "assets/site.css").status_code == 200
    assert re.search(r"rebuild #2 .*failed.*materials/metal/aluminum\.yaml", "\n".join(watched.lines))
    # fix it: the page is back
    (site / "materials/metal/aluminum.yaml").write_text(material_yaml("Aluminum", "Fixed again."))
    poll(lambda: (r := get(page)).status_code == 200 and "Fixed again." in r.text, what="the page back")
    assert "/__site/events" not in (site / "build/metal/aluminum/index.html").read_text()
    assert watched.stop() == 0
    assert watched.lines[-1] == "Stopped."


def test_site_watch_burst_and_generated_files(site: Path, watched: SiteWatch) -> None:
    burst(site, 100)
    line = watched.wait_rebuild(1)
    assert "100 files changed" in line
    poll(lambda: get(watched.url + "metal/m099/").status_code == 200, what="the new pages")
    # the generator's own folder, the output and editor droppings: no rebuild
    (site / "content/components/props").mkdir(parents=True, exist_ok=True)
    (site / "content/components/props/aluminum.yaml").write_text("output: {}\n")
    (site / "materials/metal/.aluminum.yaml.swp").write_text("x")
    (site / "build/stray.html").write_text("x")
    (site / "materials/metal/aluminum.yaml").write_text(material_yaml("Aluminum", "Sentinel."))
    assert "(materials/metal/aluminum.yaml)" in watched.wait_rebuild(2)
    assert len(watched.rebuilds()) == 2, watched.lines
