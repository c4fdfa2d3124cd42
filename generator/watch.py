"""`site watch`: build, serve with live reload, rebuild on every change.

One process: the build engine is imported once and every rebuild is a call to
`generator.build.build()`, so a rebuild after an edit costs what the graph says is stale and
nothing more. Changes are collected with `watchfiles` (one rebuild per burst: a `git checkout`
touching 100 files is one rebuild); files the generator writes itself (`content/components/`,
`build/`, `.cache/`) and editor droppings never trigger one. A failing build keeps the server
up and shows the error in the browser (DevServer.set_error) until a good build replaces it.
"""

from __future__ import annotations

import fnmatch
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import watchfiles

from .devserver import DevServer, _display, install_sigterm
from .errors import FrozenStale, InputError, Problem, SiteError

WATCHED_DIRS = ("materials", "components", "layouts", "content", "data", "assets")
WATCHED_FILES = ("site.yaml",)
GENERATED = (("content", "components"),)  # written by the build itself: never a trigger
IGNORED_TOP = {"build", ".cache"}
IGNORED_ANYWHERE = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".idea", ".vscode"}
EDITOR_TEMP = ("*.swp", "*.swo", "*.swx", "*.swpx", "*~", ".#*", "#*#", "4913", "*.tmp",
               "*___jb_tmp___", "*___jb_old___", ".DS_Store", ".~lock.*", "*.kate-swp",
               ".goutputstream-*", ".*.sw?", "sed??????")

QUIET_MS = 50  # a batch is yielded once no new change arrived for this long
MAX_BATCH_MS = 1600  # ... or after this long of continuous changes
READY_TIMEOUT_MS = 250  # the watcher yields (empty) this often; its first yield means "installed"

BuildFn = Callable[[Path, bool, "list[str] | None"], Any]


class SiteFilter:
    """watchfiles filter: True for a change that should trigger a rebuild."""

    def __init__(self, root: Path, top_level_only: bool = False):
        self.root = os.path.realpath(root)
        self.top_level_only = top_level_only
        self.extra_excluded: list[str] = []  # absolute dirs, e.g. a custom output dir

    def rel_parts(self, path: str) -> list[str] | None:
        full = os.path.realpath(path) if not os.path.isabs(path) else os.path.normpath(path)
        if not full.startswith(self.root + os.sep):
            return None
        for ex in self.extra_excluded:
            if full == ex or full.startswith(ex + os.sep):
                return None
        return full[len(self.root) + 1:].split(os.sep)

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        parts = self.rel_parts(path)
        if not parts:
            return False
        name = parts[-1]
        if any(fnmatch.fnmatchcase(name, pat) for pat in EDITOR_TEMP):
            return False
        if any(p in IGNORED_ANYWHERE for p in parts) or parts[0] in IGNORED_TOP:
            return False
        if len(parts) == 1:
            return name in WATCHED_FILES or name in WATCHED_DIRS
        if self.top_level_only or parts[0] not in WATCHED_DIRS:
            return False
        for prefix in GENERATED:
            if tuple(parts[: len(prefix)]) == prefix:
                return False
        return True


class _Watcher:
    """One watchfiles.watch() loop in a thread, feeding batches of changes into a queue."""

    def __init__(self, paths: list[str], recursive: bool, filt: SiteFilter,
                 sink: queue.Queue[Any]):
        self.paths = paths
        self.recursive = recursive
        self.filter = filt
        self.sink = sink
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"site-watch{'-r' if recursive else ''}")

    def start(self) -> _Watcher:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            for changes in watchfiles.watch(
                *self.paths, watch_filter=self.filter, debounce=MAX_BATCH_MS, step=QUIET_MS,
                stop_event=self.stop_event, rust_timeout=READY_TIMEOUT_MS, yield_on_timeout=True,
                recursive=self.recursive, raise_interrupt=False,
            ):
                self.ready.set()
                if changes:
                    self.sink.put(("changes", changes))
        except (OSError, RuntimeError) as e:  # a watched folder vanished, permission denied, ...
            self.ready.set()
            if not self.stop_event.is_set():
                self.sink.put(("restart", e))

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float = 2.0) -> None:
        self.thread.join(timeout)


class _WatchSet:
    """site.yaml and top-level folders (non-recursive) + the watched folders (recursive).

    The recursive watcher is restarted when a watched folder appears or disappears, so a folder
    created while watching (say `data/`) is watched too.
    """

    def __init__(self, root: Path, sink: queue.Queue[Any]):
        self.root = root
        self.sink = sink
        self.filter = SiteFilter(root)
        self.top = _Watcher([str(root)], False, SiteFilter(root, top_level_only=True), sink)
        self.deep: _Watcher | None = None
        self.deep_dirs: list[str] = []

    def start(self) -> None:
        self.top.start()
        self._start_deep()
        self.wait_ready()

    def _start_deep(self) -> None:
        dirs = [str(self.root / d) for d in WATCHED_DIRS if (self.root / d).is_dir()]
        self.deep_dirs = dirs
        self.deep = _Watcher(dirs, True, self.filter, self.sink).start() if dirs else None

    def restart_deep(self) -> None:
        if self.deep is not None:
            self.deep.stop()
            self.deep.join()
        self._start_deep()
        self.wait_ready()

    def wait_ready(self, timeout: float = 5.0) -> None:
        for w in (self.top, self.deep):
            if w is not None:
                w.ready.wait(timeout)

    def needs_restart(self, changes: set[tuple[watchfiles.Change, str]]) -> bool:
        for change, path in changes:
            parts = self.filter.rel_parts(path)
            if parts and len(parts) == 1 and parts[0] in WATCHED_DIRS \
                    and change in (watchfiles.Change.added, watchfiles.Change.deleted):
                return True
        return False

    def stop(self) -> None:
        for w in (self.top, self.deep):
            if w is not None:
                w.stop()
        for w in (self.top, self.deep):
            if w is not None:
                w.join()


def _engine_build(root: Path, frozen: bool, chain: "list[str] | tuple[str, ...] | None",
                  say: Callable[[str], None] = lambda _: None) -> Any:
    from .build import BuildOptions, build

    # workers=1: this process serves while it builds, and forking a threaded process is unsafe.
    options = BuildOptions(frozen=frozen, quiet=True, chain=tuple(chain) if chain else None, base_url=None,
                           workers=1)
    return build(root, options, say=say)


def _stale_name(p: Problem) -> str:
    """content/components/caption/aluminum.yaml -> caption/aluminum."""
    prefix = "content/components/"
    if p.file.startswith(prefix) and p.file.endswith(".yaml"):
        return p.file[len(prefix):-len(".yaml")]
    return p.file or p.message


def _site_paths(root: Path) -> tuple[Path, str] | None:
    """site.yaml's output folder and the path part of its base_url; None if site.yaml is broken."""
    try:
        from .config import load_config

        config = load_config(root)
    except SiteError:  # the build reports what is wrong with site.yaml
        return None
    return root / config.output_dir, config.base_path


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms < 1000 else f"{seconds:.2f} s"


def _list(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", +{len(items) - limit} more" if len(items) > limit else "")


def describe(report: Any) -> str:
    """`1 page written (metal/aluminum/index.html)`, `nothing changed`, ..."""
    written = list(getattr(report, "written", []) or [])
    removed = list(getattr(report, "removed", []) or [])
    failures = list(getattr(report, "failures", []) or [])
    parts = []
    if written:
        noun = "page" if all(w.endswith(".html") for w in written) else "file"
        parts.append(f"{len(written)} {noun}{'s' if len(written) != 1 else ''} written ({_list(written)})")
    if removed:
        parts.append(f"{len(removed)} removed ({_list(removed)})")
    if not parts:
        parts.append("nothing changed")
    if failures:
        parts.append(f"{len(failures)} failed ({_list(failures)})")
    return ", ".join(parts)


def _changed_summary(root: Path, changes: set[tuple[watchfiles.Change, str]]) -> str:
    rels = sorted({os.path.relpath(p, root).replace(os.sep, "/") for _, p in changes})
    if len(rels) <= 2:
        return ", ".join(rels)
    return f"{len(rels)} files changed"


class Watch:
    """The state of one `site watch` session. run_watch() is the function to call."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 8000,
                 port_explicit: bool = False, frozen: bool = False,
                 chain: list[str] | None = None, out: Callable[[str], None] = print,
                 stop_event: threading.Event | None = None, build_fn: BuildFn | None = None):
        self.root = Path(root).resolve()
        self.frozen = frozen
        self.chain = chain
        self._out = out
        self.stop_event = stop_event or threading.Event()
        self.build_fn = build_fn or (lambda r, f, c: _engine_build(r, f, c, say=self.out))
        out_dir, base_path = _site_paths(self.root) or (self.root / "build", "/")
        self.server = DevServer(out_dir, host=host, port=port, live_reload=True,
                                port_explicit=port_explicit, base_path=base_path)
        self.queue: queue.Queue[Any] = queue.Queue()
        self.watchers = _WatchSet(self.root, self.queue)
        self.watchers.filter.extra_excluded = [os.path.realpath(out_dir)]
        self.rebuilds = 0
        self.last_report: Any = None

    def out(self, line: str) -> None:
        if self._out is print:
            print(line, flush=True)
        else:
            self._out(line)

    def build_once(self, label: str) -> bool:
        """Build, print one line (plus one per problem), update the server. True when good."""
        t0 = time.perf_counter()
        try:
            report = self.build_fn(self.root, self.frozen, self.chain)
        except FrozenStale as e:
            # --frozen: the pages were built (with the outputs on disk); only no model was called.
            # A warning, not an error overlay: the site is usable, the terminal says what is stale.
            took = _ms(time.perf_counter() - t0)
            stale = [_stale_name(p) for p in e.problems]
            self.out(f"{label} in {took}: built; {len(stale)} LLM component(s) stale, not "
                     f"regenerated with --frozen ({_list(stale)})")
            report = getattr(e, "report", None)  # if the engine attaches it: reload only what changed
            if self.server.has_error:
                self.server.clear_error()
            elif report is not None:
                self.server.notify(list(report.written) + list(report.removed))
            else:
                self.server.notify(["*"])  # without the report, every open page reloads
            return True
        except SiteError as e:
            took = _ms(time.perf_counter() - t0)
            head = Exception.__str__(e) or type(e).__name__
            if len(e.problems) == 1:
                self.out(f"{label} failed in {took}: {e.problems[0]}")
            else:
                self.out(f"{label} failed in {took}: {head}")
                for p in e.problems:
                    self.out(f"  {p}")
            self.server.set_error(e)
            return False
        except Exception as e:  # a bug in the engine: keep serving, show it
            took = _ms(time.perf_counter() - t0)
            tb = traceback.format_exc()
            self.out(f"{label} crashed in {took}: {type(e).__name__}: {e} (a bug in site; traceback follows)")
            for line in tb.rstrip().splitlines():
                self.out("  " + line)
            self.server.set_error(f"Internal error (a bug in site): {type(e).__name__}: {e}\n\n{tb}")
            return False
        took = _ms(time.perf_counter() - t0)
        self.last_report = report
        cleared = ", error cleared" if self.server.has_error and not getattr(report, "failures", None) else ""
        self.out(f"{label} in {took}: {describe(report)}{cleared}")
        self._follow_site_yaml(report)
        failures = list(getattr(report, "failures", []) or [])
        changed = list(getattr(report, "written", []) or []) + list(getattr(report, "removed", []) or [])
        if failures:
            self.server.set_error([Problem("", f"failed: {f}") for f in failures])
            return False
        if self.server.has_error:
            self.server.clear_error()  # reloads every open page
        else:
            self.server.notify(changed)
        return True

    def _follow_site_yaml(self, report: Any) -> None:
        """site.yaml may have moved the output folder or changed base_url's path: follow it."""
        out_dir = getattr(report, "out_dir", None)
        if out_dir is not None and Path(out_dir).resolve() != self.server.root_dir.resolve():
            self.server.root_dir = Path(out_dir)
            self.watchers.filter.extra_excluded = [os.path.realpath(out_dir)]
        paths = _site_paths(self.root)
        if paths is not None and paths[1] != self.server.base_path:
            self.server.base_path = paths[1]
            self.out(f"base_url changed: now serving at {self.server.url}")

    def run(self) -> None:
        if not (self.root / "site.yaml").is_file():
            raise InputError(f"no site.yaml in {_display(self.root)}: run `site watch` in a site's "
                             f"folder or pass --root")
        url = self.server.start()  # a taken --port fails here, before any build
        restore = install_sigterm()
        try:
            self.watchers.start()
            self.build_once("build")
            if self.server.port_note:
                self.out(self.server.port_note)
            self.out(f"Serving {_display(self.server.root_dir)} at {url} with live reload (Ctrl-C to stop)")
            watched = [f for f in WATCHED_FILES] + [d + "/" for d in WATCHED_DIRS]
            self.out(f"Watching {', '.join(watched)} for changes")
            self._loop()
        except KeyboardInterrupt:
            pass
        finally:
            self.watchers.stop()
            self.server.stop()
            restore()
        self.out("Stopped.")

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            changes: set[tuple[watchfiles.Change, str]] = set()
            restart = False
            while True:  # everything that piled up (e.g. during a long build) is one rebuild
                kind, payload = item
                if kind == "changes":
                    changes |= payload
                else:
                    restart = True
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            if restart or self.watchers.needs_restart(changes):
                self.watchers.restart_deep()
            if not changes:
                continue
            self.rebuilds += 1
            self.build_once(f"rebuild #{self.rebuilds} ({_changed_summary(self.root, changes)})")


def run_watch(root: Path, host: str = "127.0.0.1", port: int = 8000, port_explicit: bool = False,
              frozen: bool = False, chain: list[str] | None = None,
              out: Callable[[str], None] = print, stop_event: threading.Event | None = None,
              build_fn: BuildFn | None = None) -> None:
    """`site watch`: blocks until Ctrl-C, SIGTERM or `stop_event` is set.

    `build_fn(root, frozen, chain) -> report` replaces the engine (tests); by default it is
    `generator.build.build(root, BuildOptions(frozen=..., quiet=True, chain=...))`.
    """
    Watch(root, host, port, port_explicit, frozen, chain, out, stop_event, build_fn).run()
