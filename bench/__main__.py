"""`python -m bench`: benchmarks of `site` (see BENCHMARKS.md).

    python -m bench static  --sizes 1000,10000 [--peers]      static builds (+ Hugo, Pelican, MkDocs)
    python -m bench llm     [--materials 109] [--latency 3.3] [--concurrency 8] [--rpm 30]
    python -m bench scaling --sizes 1000,2000,5000,10000,20000  growth with N + cProfile
    add --quick to any for a seconds-long smoke run (tests/test_bench_smoke.py)

A markdown table goes to stdout, progress to stderr, JSON to <out>/results-<kind>-<stamp>.json
(and results-<kind>-latest.json).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .common import DEFAULT_OUT, REPO, fmt_s, log, machine_info, md_table, write_results

# (target, size, op key in static results, limit) from issues 2, 3 and 6
STATIC_TARGETS = [
    ("no-op", 1000, "no-op", 0.2), ("no-op", 10000, "no-op", 1.5),
    ("one-material edit", 1000, "one-material edit (author)", 0.35),
    ("one-material edit", 10000, "one-material edit (author)", 2.5),
    ("cold", 1000, "cold", 1.4), ("cold", 10000, "cold", 10.0),
    ("cold, old output moved aside", 1000, "cold (old output moved aside)", 1.4),
    ("cold, old output moved aside", 10000, "cold (old output moved aside)", 10.0),
]
RSS_TARGET = (10000, 300.0)
MPH_TARGET = 2000
UTIL_TARGET = 95.0


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _machine_lines(m: dict[str, Any]) -> str:
    return (f"machine: {m['nproc']} × {m['cpu']}, {m['mem_gb']} GB, Python {m['python']}; "
            f"load at start {m['loadavg']}; {m['date']}; engine {m['engine']['commit']}"
            + (f" + uncommitted {', '.join(m['engine']['generator_uncommitted'])}"
               if m['engine']['generator_uncommitted'] else ""))


# ---------------------------------------------------------------------------- static


def static_targets(sizes: list[dict[str, Any]]) -> list[list[Any]]:
    by_n = {s["n"]: s for s in sizes}
    rows = []
    for name, n, op, limit in STATIC_TARGETS:
        if n in by_n and op in by_n[n]["ops"]:
            v = by_n[n]["ops"][op]["median"]
            rows.append([f"{name} at {n:,}", f"≤ {limit} s", fmt_s(v), "met" if v is not None and v <= limit else "NOT met"])
    n, limit = RSS_TARGET
    if n in by_n:
        v = by_n[n]["peak_rss_mb"]
        rows.append([f"peak RSS at {n:,}", f"≤ {limit:.0f} MB", f"{v:.0f} MB", "met" if v <= limit else "NOT met"])
        worst = {name: max(m["rss_mb"]) for name, m in by_n[n]["ops"].items() if m.get("rss_mb")}
        for name, rss in sorted(worst.items(), key=lambda kv: -kv[1]):
            rows.append([f"  peak RSS at {n:,}, {name}", f"≤ {limit:.0f} MB", f"{rss:.0f} MB",
                         "met" if rss <= limit else "NOT met"])
    return rows


def cmd_static(a: argparse.Namespace) -> int:
    from .static import (DEFAULT_PEERS, bench_size, cached_peers, install_peers, peer_ratios, peers_installed,
                         run_peers)

    sizes = [20] if a.quick else _ints(a.sizes)
    runs = 1 if a.quick else a.runs
    res: dict[str, Any] = {"kind": "static", "machine": machine_info(), "runs": runs, "sizes": []}
    scratch = a.out / "peers"
    if a.peers and not a.quick:
        if not peers_installed(scratch):
            res["peers_install"] = install_peers(scratch)
        if not peers_installed(scratch):
            log("peers not installed; see peers_install in the JSON")
    for n in sizes:
        size = bench_size(n, a.out, runs)
        if a.peers and not a.quick and peers_installed(scratch):
            size["peers"] = run_peers(n, scratch, a.peer_list or DEFAULT_PEERS, a.peer_runs)
            size["peer_ratios"] = peer_ratios(size)
        elif a.reuse_peers and not a.quick and (cached := cached_peers(n, scratch)) is not None:
            size["peers"] = cached
            size["peer_ratios"] = peer_ratios(size)
        res["sizes"].append(size)
    res["targets"] = static_targets(res["sizes"])
    path = write_results(a.out, "static", res)

    print(f"## Static build (`site build --frozen` subprocess), median of {runs} run(s)\n")
    print(_machine_lines(res["machine"]) + "\n")
    rows = []
    for s in res["sizes"]:
        for name, m in s["ops"].items():
            cpu = sorted(m.get("cpu_s") or [])
            rows.append([f"{s['n']:,}", name, fmt_s(m["median"]), fmt_s(cpu[len(cpu) // 2] if cpu else None, 2),
                         len(m["times"]), f"{m['peak_rss_mb']:.0f}", f"{m['max_other_busy_pct']:.0f}", m["note"]])
        rows.append([f"{s['n']:,}", "pages/s (cold)", s["pages_per_s_cold"], "", "", "", "", f"{s['pages']} pages"])
    print(md_table(["N", "operation", "median s", "CPU s", "runs", "peak RSS MB", "other CPU %", "what it did"],
                   rows))
    print()
    for s in res["sizes"]:
        print(f"N={s['n']:,}: load {s['load_before']} → {s['load_after']}; CPU probe (10M-add loop, s) "
              f"{s.get('cpu_probe_before')} → {s.get('cpu_probe_after')}; no-op imports: "
              + (", ".join(k for k, v in s["noop_imports"].items() if v) or "none"))
    peer_rows = []
    for s in res["sizes"]:
        for p in s.get("peer_ratios", []):
            raw = p.get("raw", {})
            t = [fmt_s(p[f"{k}_s"], 2) if p[f"{k}_s"] is not None else (raw.get(k) or "—") for k in ("cold", "noop", "edit")]
            peer_rows.append([f"{s['n']:,}", p["peer"], p["version"], *t, p["cold_ratio"], p["noop_ratio"],
                              p["edit_ratio"], p["load"]])
    if peer_rows:
        reused = [f"N={s['n']:,} measured {s['peers']['measured_at']}" for s in res["sizes"]
                  if s.get("peers", {}).get("reused")]
        print("\n## Peers (ssg_peers.sh; ratio = peer time / site time; site edit = author edit)\n")
        if reused:
            print("peer figures reused from an earlier ssg_peers.sh run: " + "; ".join(reused) + "\n")
        print(md_table(["N", "peer", "version", "cold s", "no-op s", "edit s", "cold ×", "no-op ×", "edit ×",
                        "load1/busy%"], peer_rows))
    if res["targets"]:
        print("\n## Targets\n")
        print(md_table(["target", "limit", "measured", "status"], res["targets"]))
    print(f"\nresults: {path}")
    return 0


# ---------------------------------------------------------------------------- llm


def cmd_llm(a: argparse.Namespace) -> int:
    from .llm import bench_llm

    if a.quick:
        n, latency, conc, rpm, period = 6, 0.2, 4, 8, 1.0
    else:
        n, latency, conc, rpm, period = a.materials, a.latency, a.concurrency, a.rpm, a.period
    scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    res: dict[str, Any] = {"kind": "llm", "machine": machine_info()}
    res["run"] = bench_llm(n, a.out, latency, conc, rpm, period, scenarios, warm_runs=1 if a.quick else 3)
    r = res["run"]
    targets = []
    if "nolimit" in r and latency == 3.3 and conc == 8:
        v = r["nolimit"]["materials_per_hour"]
        targets.append([f"materials/hour at 3.3 s, 8-way", f"≥ {MPH_TARGET}", v,
                        "met" if v and v >= MPH_TARGET and r["nolimit"]["rc"] == 0 else "NOT met"])
    if "rated" in r:
        x = r["rated"]
        ok = (x["utilisation_pct"] or 0) >= UTIL_TARGET and x["rc"] == 0 and not x["client_failures"]
        targets.append([f"rate limit used ({x['limit']}/{x['period_s']:g} s window)", f"≥ {UTIL_TARGET:.0f} %, no 429 failure",
                        f"{x['utilisation_pct']} %, {x['http_429_at_fake']} 429s, {x['client_failures']} failures",
                        "met" if ok else "NOT met"])
    if "resume" in r:
        d = r["resume"]["duplicate_keys_answered_before_kill"]
        targets.append(["duplicate calls after SIGKILL + resume", "0", d, "met" if d == 0 else "NOT met"])
    res["targets"] = targets
    path = write_results(a.out, f"llm-{n}", res)

    print(f"## LLM pipeline (`site build --chain groq` against the fake Groq), {n} materials, "
          f"{r['expected_calls']} LLM outputs\n")
    print(_machine_lines(res["machine"]) + "\n")
    rows = []
    for name in ("nolimit", "resume", "rated"):
        if name not in r:
            continue
        x = r[name]
        lat = x.get("latency_s", latency)
        setting = f"{conc}-way, {lat:g} s latency" + (
            f", limit {x['limit']}/{x['period_s']:g} s" if name == "rated" else ", no limit")
        if name == "resume":
            setting += f", rerun after SIGKILL at {x['answered_before_kill']} answers"
        rows.append([name, setting, x["rc"], x["wall_s"], x["materials_per_hour"], x["calls_at_fake"],
                     x["cache_hits"], x["http_429_at_fake"], x["client_failures"],
                     x.get("utilisation_pct", "—"), x.get("duplicate_keys_answered_before_kill", "—"),
                     x["peak_rss_mb"]])
    print(md_table(["run", "setting", "rc", "wall s", "materials/h", "calls", "cache hits", "429s", "failures",
                    "utilisation %", "dup. calls", "peak RSS MB"], rows))
    if "nolimit" in r and "warm" in r["nolimit"]:
        w = r["nolimit"]["warm"]
        print(f"\nwarm rebuild (every output present): {w['calls_at_fake']} calls, median {w['median_s']} s "
              f"vs no-op `--frozen` {w['noop_frozen_median_s']} s")
    if targets:
        print("\n## Targets\n")
        print(md_table(["target", "limit", "measured", "status"], targets))
    print(f"\nresults: {path}")
    failed = [k for k in ("nolimit", "resume", "rated") if k in r and r[k]["rc"] != 0]
    return 1 if failed else 0


# ---------------------------------------------------------------------------- scaling


def cmd_scaling(a: argparse.Namespace) -> int:
    from .scaling import bench_sizes, profile_op
    from .sites import ensure_site

    sizes = [10, 20] if a.quick else _ints(a.sizes)
    runs = 1 if a.quick else a.runs
    res: dict[str, Any] = {"kind": "scaling", "machine": machine_info(), "runs": runs}
    res["rows"] = rows = bench_sizes(sizes, a.out, runs)
    if a.profile:
        ops = ["noop"] if a.quick else [o.strip() for o in a.profile_ops.split(",") if o.strip()]
        res["profiles"] = []
        for op in ops:
            n = a.profile_cold_n if op == "cold" and not a.quick else sizes[-1]
            site = ensure_site(n, a.out)
            log(f"profiling {op} at N={n}")
            res["profiles"].append(profile_op(site, op, a.out))
    path = write_results(a.out, "scaling", res)

    print(f"## Scaling: `site build` time vs N (median of {runs})\n")
    print(_machine_lines(res["machine"]) + "\n")
    print(md_table(["N", "no-op s", "× first", "author edit s", "× first", "description edit s", "× first",
                    "N × first", "load"], [
        [f"{r['n']:,}", fmt_s(r["noop"]["median"]), r["noop"]["growth_vs_first"],
         fmt_s(r["edit_author"]["median"]), r["edit_author"]["growth_vs_first"],
         fmt_s(r["edit_description"]["median"]), r["edit_description"]["growth_vs_first"],
         r["n_growth_vs_first"], f"{r['load_before'][0]}→{r['load_after'][0]}"] for r in rows]))
    for p in res.get("profiles", []):
        print(f"\n### cProfile: {p['op']} at N={p['n']:,} ({p['wall_s']:.3f} s in-process, "
              f"{p['rendered']} rendered; full listing {p['text']})\n")
        print(md_table(["function", "calls", "own s", "cumulative s"],
                       [[t["function"], t["calls"], t["tottime"], t["cumtime"]] for t in p["top_tottime"][:8]]))
    print(f"\nresults: {path}")
    return 0


def _bytecode_as_installed() -> None:
    """Measure `site` with its modules' bytecode cached, as after a `pip install` (which
    compiles them). An environment with PYTHONDONTWRITEBYTECODE set would otherwise recompile
    every generator module in every measured process: ~25 ms of each build."""
    import compileall
    import os

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(REPO / "generator"), quiet=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work and results folder (default bench/out)")
    common.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("static", parents=[common], help="static build benchmark (+ peers)")
    s.add_argument("--sizes", default="1000,10000")
    s.add_argument("--runs", type=int, default=3)
    s.add_argument("--peers", action="store_true", help="also run ssg_peers.sh (Hugo, Pelican, MkDocs)")
    s.add_argument("--peer-list", default=None, help='PEERS for ssg_peers.sh (default "hugo pelican mkdocs")')
    s.add_argument("--peer-runs", type=int, default=3)
    s.add_argument("--reuse-peers", action="store_true",
                   help="compare with the last ssg_peers.sh results in <out>/peers instead of re-running them")
    s.set_defaults(func=cmd_static)

    l_ = sub.add_parser("llm", parents=[common], help="LLM pipeline benchmark against the fake Groq")
    l_.add_argument("--materials", type=int, default=109)
    l_.add_argument("--latency", type=float, default=3.3, help="seconds per answer (no-limit and resume runs)")
    l_.add_argument("--concurrency", type=int, default=8)
    l_.add_argument("--rpm", type=int, default=30, help="requests per window in the rate-limited run (0: skip it)")
    l_.add_argument("--period", type=float, default=6.0,
                    help="window of the rate-limited run in seconds (60 = real time; 6 = 10× time-compressed, "
                         "latency scaled by the same factor)")
    l_.add_argument("--scenarios", default="nolimit,resume,rated")
    l_.set_defaults(func=cmd_llm)

    c = sub.add_parser("scaling", parents=[common], help="no-op / one-edit time vs N, and cProfile")
    c.add_argument("--sizes", default="1000,2000,5000,10000,20000")
    c.add_argument("--runs", type=int, default=3)
    c.add_argument("--no-profile", dest="profile", action="store_false")
    c.add_argument("--profile-ops", default="noop,edit_author,edit_description,cold",
                   help="operations to profile at the largest N (cold: at --profile-cold-n)")
    c.add_argument("--profile-cold-n", type=int, default=1000, help="N for the cold-build profile")
    c.set_defaults(func=cmd_scaling)

    a = ap.parse_args(argv)
    a.out = a.out.resolve()
    _bytecode_as_installed()
    t0 = time.perf_counter()
    rc = a.func(a)
    log(f"{a.cmd} finished in {time.perf_counter() - t0:.1f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
