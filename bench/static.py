"""Static build benchmark: `site build --frozen` as a subprocess on scaled sites, and the peers.

Per N: cold (rm -rf build .cache), no-op, one-material edit (the material's `author`, a field only
its page uses: no LLM call), one-material description edit (`--chain template` regenerates that
material's LLM outputs offline), one-layout edit (layouts/category.html), one-component-template
edit (components/table/view.html.j2, used by every material page), peak RSS, pages/s (cold).
Every edit is undone afterwards (and the site rebuilt), so a cached site stays pristine.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

from .common import REPO, Measure, cpu_probe, loadavg, log, rmtree, run, site_command
from .sites import ensure_site, material_files

PEERS_SCRIPT = Path("/work/shared/bench/ssg_peers.sh")
DEFAULT_PEERS = "hugo pelican mkdocs"

_COUNTS = re.compile(r"(\d+) rendered(?: \(\d+ unchanged\))?, (\d+) written")
_GENERATED = re.compile(r"(\d+) LLM outputs? (?:generated|stored)")


def _dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _counts(m: Measure) -> str:
    c = _COUNTS.search(m.last_output)
    g = _GENERATED.search(m.last_output)
    parts = []
    if c:
        parts.append(f"{c.group(1)} rendered, {c.group(2)} written")
    if g:
        parts.append(f"{g.group(1)} LLM outputs generated")
    if "nothing to do" in m.last_output:
        parts.append("nothing to do")
    return "; ".join(parts)


def _html_comment(text: str, i: int) -> str:
    """Add an HTML comment that shows in the output: inside the last block of a child template
    (text after `{% endblock %}` in a template that extends another is never rendered)."""
    comment = f"<!-- benchmark edit {i + 1} -->\n"
    k = max(text.rfind("{%- endblock"), text.rfind("{% endblock"))
    if "{%- extends" in text or "{% extends" in text:
        return text[:k] + comment + text[k:] if k >= 0 else text
    return text + "\n" + comment


class StaticBench:
    def __init__(self, site: Path, runs: int):
        self.site = site
        self.runs = runs
        self.site_cmd = site_command()
        self.frozen = [*self.site_cmd, "build", "--frozen"]
        self.template = [*self.site_cmd, "build", "--chain", "template"]

    def build(self, cmd: list[str], m: Measure | None = None):
        r = run(cmd, cwd=self.site).check()
        if m is not None:
            m.add(r)
        return r

    # -- operations ---------------------------------------------------------------------------

    def cold(self, runs: int) -> tuple[Measure, int]:
        m = Measure("cold")
        for _ in range(runs):
            rmtree(self.site / "build")
            rmtree(self.site / ".cache")
            self.build(self.frozen, m)
        pages = sum(1 for _ in (self.site / "build").rglob("*.html"))
        m.note = _counts(m)
        return m, pages

    def cold_moved_aside(self, runs: int, trash: Path) -> Measure:
        """Cold, but the old output is renamed away instead of deleted just before: on ext4,
        creating files right after deleting thousands makes the inode allocator skip every
        recently freed inode (`recently_deleted` in a kernel profile), which costs a 10k build
        seconds of system time. A fresh checkout (CI) has no such deletions behind it. The
        peers' `cold` deletes, so `cold` above stays the like-for-like figure."""
        m = Measure("cold (old output moved aside)")
        trash.mkdir(parents=True, exist_ok=True)
        for i in range(runs):
            if (self.site / "build").exists():
                (self.site / "build").rename(trash / f"build-{os.getpid()}-{i}")
            rmtree(self.site / ".cache")
            self.build(self.frozen, m)
        m.note = _counts(m)
        return m

    def noop(self) -> Measure:
        m = Measure("no-op")
        self.build(self.frozen)  # settle: whatever the previous step left
        for _ in range(self.runs):
            self.build(self.frozen, m)
        m.note = _counts(m)
        return m

    def _edit_runs(self, name: str, path: Path, variant: Callable[[str, int], str], cmd: list[str],
                   restore_cmd: list[str]) -> Measure:
        """Edit `path` to variant(original, i) before each timed run; restore it after."""
        m = Measure(name)
        original = path.read_bytes()
        try:
            for i in range(self.runs):
                path.write_text(variant(original.decode("utf-8"), i), encoding="utf-8")
                self.build(cmd, m)
        finally:
            path.write_bytes(original)
            self.build(restore_cmd)
        m.note = _counts(m)
        return m

    def material_edits(self) -> list[Measure]:
        files = material_files(self.site)
        target = files[len(files) // 2]
        data = yaml.safe_load(target.read_text(encoding="utf-8"))
        authors = list(yaml.safe_load((self.site / "data" / "authors.yaml").read_text(encoding="utf-8")))
        others = [a for a in authors if a != data.get("author")] or authors
        # one other author, then back, then the other again: every run is a real one-field change
        cycle = [others[0], data.get("author"), others[0]]

        def author(text: str, i: int) -> str:
            d = yaml.safe_load(text)
            d["author"] = cycle[i % len(cycle)]
            return _dump(d)

        def description(text: str, i: int) -> str:
            d = yaml.safe_load(text)
            d["description"] = f"{d.get('description', '').rstrip()} Revised for benchmark run {i + 1}."
            return _dump(d)

        rel = target.relative_to(self.site)
        a = self._edit_runs("one-material edit (author)", target, author, self.frozen, self.frozen)
        a.note = f"{rel}: author; " + a.note
        d = self._edit_runs("one-material edit (description, --chain template)", target, description,
                            self.template, self.template)
        d.note = f"{rel}: description; " + d.note
        return [a, d]

    def layout_edit(self) -> Measure:
        path = self.site / "layouts" / "category.html"
        return self._edit_runs("one-layout edit (category.html)", path, _html_comment, self.frozen, self.frozen)

    def component_template_edit(self) -> Measure:
        path = self.site / "components" / "table" / "view.html.j2"
        return self._edit_runs("one-component-template edit (table/view.html.j2)", path, _html_comment,
                               self.frozen, self.frozen)


def sdk_imported_on_noop(site: Path) -> dict[str, bool]:
    """Which provider SDKs a no-op `site build --frozen` imports (the core issue: none)."""
    code = ("import sys\nfrom generator.cli import main\n"
            f"sys.argv = ['site', 'build', '--frozen', '-q', '--root', {str(site)!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(','.join(m for m in ('groq', 'ollama', 'openai', 'httpx', 'diskcache') if m in sys.modules))")
    r = run([sys.executable, "-c", code], cwd=REPO)
    got = set(filter(None, r.stdout.strip().splitlines()[-1].split(","))) if r.stdout.strip() else set()
    return {m: m in got for m in ("groq", "ollama", "openai", "httpx", "diskcache")}


def bench_size(n: int, out: Path, runs: int) -> dict[str, Any]:
    site = ensure_site(n, out)
    b = StaticBench(site, runs)
    cold_runs = 1 if n >= 20000 else runs
    res: dict[str, Any] = {"n": n, "site": str(site), "runs": runs, "cold_runs": cold_runs,
                           "load_before": loadavg(), "cpu_probe_before": cpu_probe()}
    log(f"N={n}: cold x{cold_runs}")
    cold, pages = b.cold(cold_runs)
    ops = [cold]
    log(f"N={n}: cold x{cold_runs}, old output moved aside")
    trash = out / "trash"
    ops.append(b.cold_moved_aside(cold_runs, trash))
    log(f"N={n}: no-op x{runs}")
    ops.append(b.noop())
    log(f"N={n}: one-material edits x{runs}")
    ops += b.material_edits()
    log(f"N={n}: layout edit x{runs}")
    ops.append(b.layout_edit())
    log(f"N={n}: component-template edit x{runs}")
    ops.append(b.component_template_edit())
    res["pages"] = pages
    res["pages_per_s_cold"] = round(pages / cold.median, 1) if cold.median else None
    res["ops"] = {m.name: m.as_dict() for m in ops}
    res["peak_rss_mb"] = max(max(m.rss_mb) for m in ops)
    res["noop_imports"] = sdk_imported_on_noop(site)
    rmtree(trash)  # deleted only now that nothing is measured any more
    res["load_after"] = loadavg()
    res["cpu_probe_after"] = cpu_probe()
    log(f"N={n}: done (cold {cold.median:.2f} s, no-op {ops[2].median:.3f} s)")
    return res


# ---------------------------------------------------------------------------- peers


def peers_installed(scratch: Path) -> bool:
    return shutil.which("hugo") is not None or (scratch / "venv" / "bin" / "pelican").exists()


def install_peers(scratch: Path) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)
    logf = scratch / "install.log"
    log(f"installing peers into {scratch} (log: {logf})")
    with open(logf, "w") as f:
        p = subprocess.run(["bash", str(PEERS_SCRIPT), "install", str(scratch)], stdout=f, stderr=subprocess.STDOUT)
    tail = logf.read_text(errors="replace").strip().splitlines()[-15:]
    return {"rc": p.returncode, "log": str(logf), "tail": tail}


def run_peers(n: int, scratch: Path, peers: str, runs: int) -> dict[str, Any]:
    env = dict(os.environ, PEERS=peers, RUNS=str(runs))
    logf = scratch / f"run-N{n}.log"
    log(f"peers N={n}: {peers} (log: {logf})")
    with open(logf, "w") as f:
        p = subprocess.run(["bash", str(PEERS_SCRIPT), str(n), str(scratch)], env=env, stdout=f,
                           stderr=subprocess.STDOUT)
    tsv = scratch / "results" / f"N{n}" / "results.tsv"
    rows: list[dict[str, str]] = []
    if tsv.exists():
        with open(tsv, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    return {"rc": p.returncode, "log": str(logf), "tsv": str(tsv), "rows": rows}


def cached_peers(n: int, scratch: Path) -> dict[str, Any] | None:
    """The last ssg_peers.sh results for N (peers do not change with our engine)."""
    tsv = scratch / "results" / f"N{n}" / "results.tsv"
    if not tsv.exists():
        return None
    with open(tsv, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    import time as _t
    return {"rc": 0, "tsv": str(tsv), "rows": rows, "reused": True,
            "measured_at": _t.strftime("%Y-%m-%d %H:%M", _t.localtime(tsv.stat().st_mtime))}


def _num(x: Any) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def peer_ratios(size: dict[str, Any]) -> list[dict[str, Any]]:
    """Each peer's time divided by site's (> 1: site is faster)."""
    ops = size["ops"]
    site = {"cold": ops["cold"]["median"], "noop": ops["no-op"]["median"],
            "edit": ops["one-material edit (author)"]["median"]}
    out = []
    for row in size.get("peers", {}).get("rows", []):
        peer = {"cold": _num(row.get("cold_s")), "noop": _num(row.get("noop_s")), "edit": _num(row.get("edit_s"))}
        out.append({
            "peer": row.get("peer"), "version": row.get("version"), **{f"{k}_s": v for k, v in peer.items()},
            "raw": {k: row.get(f"{k}_s") for k in peer},
            **{f"{k}_ratio": (round(peer[k] / site[k], 2) if peer[k] and site[k] else None) for k in peer},
            "pages_per_s_cold": row.get("pages_per_s_cold"),
            "load": (row.get("load1/busy_before/busy_during") or "").replace(" | ", "; "),
            "note": row.get("note"),
        })
    return out
