"""How cost grows with N: no-op and one-material edit times for N = 1k ... 20k, and cProfile of
an in-process `generator.build.build(...)` call for the worst cases at the largest N."""

from __future__ import annotations

import io
import pstats
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from .common import REPO, loadavg, log, run
from .sites import ensure_site, material_files
from .static import StaticBench, _dump

PROFILE_SNIPPET = r"""
import cProfile, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from generator.build import BuildOptions, build
opts = BuildOptions(frozen={frozen}, quiet=True, chain={chain})
prof = cProfile.Profile()
t0 = time.perf_counter()
prof.enable()
report = build(Path({site!r}), opts)
prof.disable()
print(f"{{time.perf_counter() - t0:.4f}} {{len(report.rendered)}} {{len(report.written)}}")
prof.dump_stats({stats!r})
"""


def bench_sizes(sizes: list[int], out: Path, runs: int) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        site = ensure_site(n, out)
        b = StaticBench(site, runs)
        load0 = loadavg()
        log(f"scaling N={n}: no-op, author edit, description edit x{runs}")
        noop = b.noop()
        author, desc = b.material_edits()
        rows.append({"n": n, "load_before": load0, "load_after": loadavg(),
                     "noop": noop.as_dict(), "edit_author": author.as_dict(), "edit_description": desc.as_dict()})
    base = rows[0]
    for r in rows:
        f = r["n"] / base["n"]
        for op in ("noop", "edit_author", "edit_description"):
            b0, x = base[op]["median"], r[op]["median"]
            r[op]["growth_vs_first"] = round(x / b0, 2) if b0 else None
        r["n_growth_vs_first"] = round(f, 2)
    return rows


def _stats_text(stats_file: Path, limit: int = 30) -> str:
    buf = io.StringIO()
    st = pstats.Stats(str(stats_file), stream=buf)
    st.strip_dirs()
    buf.write("==== by tottime (own time) ====\n")
    st.sort_stats("tottime").print_stats(limit)
    buf.write("\n==== by cumulative time ====\n")
    st.sort_stats("cumulative").print_stats(limit)
    return buf.getvalue()


def profile_op(site: Path, op: str, out: Path) -> dict[str, Any]:
    """Profile one `op` (cold | noop | edit_author | edit_description) as an in-process build() in a fresh
    interpreter (so module-level caches are as cold as in a CLI run)."""
    n = len(material_files(site))
    stats = out / f"profile-{op}-{n}.pstats"
    text_file = out / f"profile-{op}-{n}.txt"
    target = material_files(site)[n // 2]
    original = target.read_bytes()
    frozen, chain = True, None
    try:
        run([sys.executable, "-m", "generator", "build", "--frozen", "-q", "--root", str(site)], cwd=REPO).check()
        if op == "cold":
            shutil.rmtree(site / "build", ignore_errors=True)
            shutil.rmtree(site / ".cache", ignore_errors=True)
        elif op != "noop":
            d = yaml.safe_load(original.decode("utf-8"))
            if op == "edit_author":
                authors = list(yaml.safe_load((site / "data" / "authors.yaml").read_text(encoding="utf-8")))
                d["author"] = next(a for a in authors if a != d.get("author"))
            else:
                d["description"] = d.get("description", "") + " Revised for profiling."
                frozen, chain = False, ("template",)
            target.write_text(_dump(d), encoding="utf-8")
        code = PROFILE_SNIPPET.format(repo=str(REPO), site=str(site), stats=str(stats), frozen=frozen,
                                      chain=repr(chain))
        p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"profile {op} failed:\n{p.stderr[-3000:]}")
        wall, rendered, written = p.stdout.split()[-3:]
    finally:
        target.write_bytes(original)
        run([sys.executable, "-m", "generator", "build", "-q", "--chain", "template", "--root", str(site)],
            cwd=REPO).check()
    text = _stats_text(stats)
    text_file.write_text(text, encoding="utf-8")
    return {"op": op, "n": n, "wall_s": float(wall), "rendered": int(rendered), "written": int(written),
            "stats": str(stats), "text": str(text_file), "top_tottime": _top(stats)}


def _top(stats_file: Path, k: int = 12) -> list[dict[str, Any]]:
    st = pstats.Stats(str(stats_file))
    rows = []
    for (file, line, fn), (cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(file).name}:{line}({fn})", "calls": nc, "tottime": round(tt, 4),
                     "cumtime": round(ct, 4)})
    rows.sort(key=lambda r: r["tottime"], reverse=True)
    return rows[:k]
