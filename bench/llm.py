"""LLM pipeline benchmark: `site build --chain groq` against the loopback fake Groq server.

The fake (tests/fakes FakeGroq, in this process) answers every chat completion after `latency`
seconds with a valid output: the one the template tier produced for the material named in the
prompt ("- Name: ..."), component taken from the response_format's schema name. The outputs come
from the site's committed content/components (109-material example) or from the cached scaled
site (bench/out/sites/N, produced by `site build --chain template`).

Scenarios, each on a fresh copy of the site without content/components/ and .cache/:
  nolimit   concurrency C, no rpm/tpm limit: materials/hour, calls, cache hits, 429s, peak RSS;
            then `warm`: the same build again (every output present) must make 0 calls and take
            the time of a no-op build
  resume    the same build SIGKILLed after about half the calls, then run again: keys the fake
            answered twice (must be 0)
  rated     a rate limit the fake enforces (sliding window; 429 + retry-after when exceeded) and the
            client is configured with: utilisation of the limit, 429s, failures. Time-compressed:
            the window is `period` seconds instead of 60 and the latency shrinks by the same factor,
            so every ratio (latency/window, burst size, windows per run) is that of the real run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from .common import REPO, Measure, loadavg, log, rmtree, run, site_command
from .scale import SITE_PARTS
from .sites import ensure_site

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fakes import FakeGroq, Reply  # noqa: E402

API_KEY = "bench-key-not-a-secret"
GRACE = 0.1  # s: an answer sent this close to the SIGKILL may be received but not yet stored
NAME_RE = re.compile(r"^- Name: (.+)$", re.M)
try:
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader


# ---------------------------------------------------------------------------- the fake


class BenchGroq(FakeGroq):
    """FakeGroq answering from a table of valid outputs, logging every generation request
    (key, arrival, status, answer-sent time) and optionally enforcing a rate limit."""

    def __init__(self, outputs: dict[tuple[str, str], Any], latency: float,
                 limit: int | None = None, period: float = 60.0):
        super().__init__(api_key=API_KEY)
        self.outputs = outputs
        # names sorted longest first, grouped by their first 2 characters: the prompt's "- Name: X"
        # line may run into the next line when a template strips the newline after it
        self._names: dict[str, list[str]] = defaultdict(list)
        for name in sorted({k[1] for k in outputs}, key=len, reverse=True):
            self._names[name[:2]].append(name)
        self.latency = latency
        self.limit = limit
        self.period = period
        self._lock = threading.Lock()
        self._accepted: list[float] = []  # arrival times of requests let through (for the limit)
        self.log: list[dict[str, Any]] = []
        self._local = threading.local()
        self.responder = self._respond

    def start(self) -> "BenchGroq":
        super().start()
        if self._server is not None:  # connections reset by a SIGKILLed client: expected, not worth a traceback
            self._server.handle_error = lambda request, client_address: None
        return self

    def _respond(self, body: dict) -> Reply:
        now = time.monotonic()
        try:
            component = body["response_format"]["json_schema"]["name"]
        except (KeyError, TypeError):
            component = "?"
        text = "\n".join(m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user")
        m = NAME_RE.search(text)
        key = (component, self._name(m.group(1)) if m else "?")
        entry: dict[str, Any] = {"key": key, "at": now, "status": 200, "done": None}
        self._local.entry = entry
        with self._lock:
            self.log.append(entry)
            if self.limit is not None:
                cut = now - self.period
                i = 0
                while i < len(self._accepted) and self._accepted[i] <= cut:
                    i += 1
                del self._accepted[:i]
                if len(self._accepted) >= self.limit:
                    wait = max(0.01, self._accepted[0] + self.period - now)
                    entry["status"] = 429
                    return Reply(status=429, headers={"retry-after": f"{wait:.2f}"},
                                 error=f"Rate limit reached: Limit {self.limit} requests per {self.period:g}s. "
                                       f"Please try again in {wait:.2f}s.", error_code="rate_limit_exceeded")
                self._accepted.append(now)
        out = self.outputs.get(key)
        if out is None:
            entry["status"] = "unknown"
            return Reply(content={}, delay=self.latency)
        content = json.dumps(out, ensure_ascii=False)
        return Reply(content=content, delay=self.latency, prompt_tokens=max(1, len(text) // 4),
                     completion_tokens=max(1, len(content) // 4))

    def _name(self, rest: str) -> str:
        rest = rest.strip()
        for name in self._names.get(rest[:2], ()):
            if rest == name or rest.startswith(name):
                return name
        return rest

    def route(self, req) -> None:
        self._local.entry = None
        try:
            super().route(req)
        finally:
            entry = self._local.entry
            if entry is not None:
                entry["done"] = time.monotonic()
            if self.is_generation(req.method, req.path):
                with self._cond:  # the base class keeps every request body: keep memory flat at 10k
                    if len(self.calls) > 1000:
                        del self.calls[:-100]

    # ---- figures ------------------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.log)

    def answered(self) -> int:
        with self._lock:
            return sum(1 for e in self.log if e["status"] == 200 and e["done"] is not None)

    def last_answer_at(self, before: float | None = None) -> float:
        with self._lock:
            ts = [e["done"] for e in self.log if e["done"] is not None and (before is None or e["done"] <= before)]
        return max(ts) if ts else 0.0

    def last_answer_age(self) -> float:
        return time.monotonic() - self.last_answer_at()

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self._accepted.clear()


# ---------------------------------------------------------------------------- sites


def material_names(site: Path) -> dict[str, str]:
    names = {}
    for f in site.glob("materials/*/*.yaml"):
        d = yaml.load(f.read_text(encoding="utf-8"), Loader=_Loader)
        names[d.get("slug") or f.stem] = d["name"]
    return names


def outputs_by_name(source: Path) -> dict[tuple[str, str], Any]:
    """(component, material name) -> output object, from source/content/components."""
    names = material_names(source)
    table = {}
    for f in (source / "content" / "components").glob("*/*.yaml"):
        d = yaml.load(f.read_text(encoding="utf-8"), Loader=_Loader)
        name = names.get(d.get("material") or f.stem)
        if name is not None:
            table[(d.get("component") or f.parent.name, name)] = d["output"]
    return table


def source_site(n: int, out: Path) -> Path:
    repo_n = len(list(REPO.glob("materials/*/*.yaml")))
    return REPO if n == repo_n else ensure_site(n, out)


def fresh_copy(source: Path, dest: Path, *, concurrency: int, rpm: int | None, period: float | None) -> Path:
    """A copy of `source` without content/components, .cache and build, set up for `--chain groq`."""
    rmtree(dest)
    dest.mkdir(parents=True)
    for part in (*SITE_PARTS, "materials"):
        src = source / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        elif src.exists():
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)
    conf = yaml.safe_load((dest / "site.yaml").read_text(encoding="utf-8"))
    llm = conf.setdefault("llm", {})
    llm["chain"] = ["groq"]
    groq = dict(llm.setdefault("providers", {}).get("groq") or {})
    groq.update({"concurrency": concurrency, "rpm": rpm, "tpm": None})
    if period is not None:
        groq["period_seconds"] = period
    llm["providers"]["groq"] = groq
    (dest / "site.yaml").write_text(yaml.safe_dump(conf, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return dest


def _env(fake: FakeGroq) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SITE_LLM_CHAIN", "OLLAMA_HOST")}
    env.update(GROQ_API_KEY=API_KEY, GROQ_BASE_URL=fake.url, COLUMNS="200", NO_COLOR="1")
    return env


def summary_row(output: str, name: str) -> dict[str, str] | None:
    """A row of the build's 'LLM components' summary table (rich box or ascii)."""
    header = None
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)[1:-1]]
        if not cells:
            continue
        if cells[0] == "provider":
            header = cells
        elif header and cells[0] == name and len(cells) == len(header):
            return dict(zip(header, cells))
    return None


def _int(row: dict[str, str] | None, col: str) -> int | None:
    try:
        return int(row[col].replace(",", "")) if row else None
    except (KeyError, ValueError):
        return None


def count_outputs(site: Path) -> int:
    return sum(1 for _ in (site / "content" / "components").glob("*/*.yaml"))


# ---------------------------------------------------------------------------- scenarios


class _Progress:
    """Logs the fake's answered count every `every` seconds while a long run goes on."""

    def __init__(self, fake: "BenchGroq", expected: int, every: float = 60.0):
        self.fake, self.expected, self.every = fake, expected, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        t0 = time.monotonic()
        while not self.stop.wait(self.every):
            log(f"  ... {self.fake.answered()} of {self.expected} answered after {time.monotonic() - t0:.0f} s")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()


def _figures(fake: BenchGroq, r, n_materials: int, expected: int, site: Path) -> dict[str, Any]:
    log_ = fake.snapshot()
    out = r.stdout + "\n" + r.stderr
    groq_row, cache_row = summary_row(out, "groq"), summary_row(out, "cache")
    ok = [e for e in log_ if e["status"] == 200]
    span = (max(e["done"] or e["at"] for e in log_) - min(e["at"] for e in log_)) if log_ else 0.0
    return {
        "rc": r.rc, "wall_s": round(r.wall, 2), "peak_rss_mb": round(r.maxrss_mb, 1),
        "materials": n_materials, "materials_per_hour": round(n_materials / r.wall * 3600) if r.wall else None,
        "generation_span_s": round(span, 2),
        "calls_at_fake": len(log_), "answered_200": len(ok),
        "unknown_keys": sum(1 for e in log_ if e["status"] == "unknown"),
        "http_429_at_fake": sum(1 for e in log_ if e["status"] == 429),
        "expected_calls": expected,
        "client_calls": _int(groq_row, "calls"), "client_429s": _int(groq_row, "429s"),
        "client_failures": _int(groq_row, "failures"), "client_retries": _int(groq_row, "retries"),
        "cache_hits": _int(cache_row, "answers"),
        "outputs_written": count_outputs(site),
        "max_in_flight_at_fake": fake.max_in_flight,
        "other_busy_pct": r.other_busy_pct,
    }


class LLMBench:
    def __init__(self, n: int, out: Path, latency: float, concurrency: int, warm_runs: int = 3):
        self.warm_runs = warm_runs
        self.n = n
        self.out = out
        self.work = out / "llm"
        self.latency = latency
        self.concurrency = concurrency
        self.source = source_site(n, out)
        log(f"LLM bench: loading valid outputs from {self.source}/content/components")
        self.outputs = outputs_by_name(self.source)
        self.expected = len(self.outputs)
        self.cmd = [*site_command(), "build", "--chain", "groq"]

    def _fake(self, latency: float, limit: int | None = None, period: float = 60.0) -> BenchGroq:
        return BenchGroq(self.outputs, latency, limit, period).start()

    def nolimit(self) -> dict[str, Any]:
        site = fresh_copy(self.source, self.work / f"nolimit-{self.n}", concurrency=self.concurrency,
                          rpm=None, period=None)
        fake = self._fake(self.latency)
        try:
            log(f"nolimit: {self.n} materials, {self.expected} expected calls, latency {self.latency} s, "
                f"concurrency {self.concurrency}")
            with _Progress(fake, self.expected):
                r = run(self.cmd, cwd=site, env=_env(fake))
            res = _figures(fake, r, self.n, self.expected, site)
            log(f"nolimit: {res['wall_s']} s, {res['materials_per_hour']} materials/hour, rc {r.rc}")
            if r.rc != 0:
                res["tail"] = (r.stdout + r.stderr)[-3000:]
            # warm: everything present -> zero calls, the time of a no-op build
            fake.reset_log()
            warm, frozen = Measure("warm --chain groq"), Measure("no-op --frozen")
            for _ in range(self.warm_runs):
                warm.add(run(self.cmd, cwd=site, env=_env(fake)))
                frozen.add(run([*site_command(), "build", "--frozen"], cwd=site, env=_env(fake)))
            res["warm"] = {"calls_at_fake": len(fake.snapshot()), "median_s": round(warm.median, 3),
                           "noop_frozen_median_s": round(frozen.median, 3), "last_output": warm.last_output}
            return res
        finally:
            fake.stop()

    def resume(self) -> dict[str, Any]:
        site = fresh_copy(self.source, self.work / f"resume-{self.n}", concurrency=self.concurrency,
                          rpm=None, period=None)
        fake = self._fake(self.latency)
        try:
            half = max(1, self.expected // 2)
            quiet = min(0.25, self.latency / 2)
            log(f"resume: SIGKILL after {half} of {self.expected} answers (at a moment with no answer sent "
                f"in the last {quiet:g} s), then rerun")
            t0 = time.perf_counter()
            p = subprocess.Popen(self.cmd, cwd=site, env=_env(fake), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            while p.poll() is None and fake.answered() < half:
                time.sleep(0.005)
            # a kill right as an answer arrives always finds it received but not yet stored: that
            # window cannot be closed by any client, so kill between answers, as a user's Ctrl-C or an
            # OOM kill would typically land; answers sent just before the kill are reported apart
            deadline = time.monotonic() + max(1.0, self.latency)
            while p.poll() is None and time.monotonic() < deadline and fake.last_answer_age() < quiet:
                time.sleep(0.002)
            finished_early = p.poll() is not None
            t_kill = time.monotonic()
            if not finished_early:
                os.kill(p.pid, signal.SIGKILL)
            p.wait()
            first_wall = time.perf_counter() - t0
            before = fake.snapshot()
            delivered_before = sum(1 for e in before if e["status"] == 200 and e["done"] and e["done"] <= t_kill)
            in_flight = sum(1 for e in before if e["status"] == 200 and not (e["done"] and e["done"] <= t_kill))
            present = count_outputs(site)
            with _Progress(fake, self.expected):
                r = run(self.cmd, cwd=site, env=_env(fake))
            res = _figures(fake, r, self.n, self.expected, site)
            res["materials_per_hour"] = None  # two partial runs: see nolimit for throughput
            log_ = fake.snapshot()
            by_key: dict[tuple, list[dict]] = defaultdict(list)
            for e in log_:
                if e["status"] == 200:
                    by_key[e["key"]].append(e)
            dup_any = [k for k, es in by_key.items() if len(es) > 1]
            # paid twice: a key answered (response sent) before the kill and asked again afterwards;
            # "just before" = answered within GRACE s of the kill (received, maybe not yet stored)
            def answered_before(es: list[dict], cut: float) -> bool:
                return any(e["done"] and e["done"] <= cut for e in es)
            dup_paid = [k for k, es in by_key.items() if len(es) > 1 and answered_before(es, t_kill - GRACE)]
            dup_recent = [k for k, es in by_key.items() if len(es) > 1 and answered_before(es, t_kill)
                          and k not in dup_paid]
            res.update({
                "killed": not finished_early, "kill_after_s": round(first_wall, 2),
                "answered_before_kill": delivered_before, "in_flight_at_kill": in_flight,
                "outputs_on_disk_after_kill": present,
                "rerun_calls": sum(1 for e in log_ if e["at"] > t_kill),
                "duplicate_keys_answered_before_kill": len(dup_paid),
                "duplicate_keys_answered_just_before_kill": len(dup_recent),
                "grace_s": GRACE, "quiet_before_kill_s": round(t_kill - fake.last_answer_at(t_kill), 3),
                "duplicate_keys_any": len(dup_any),
                "duplicate_examples": [list(k) for k in dup_paid[:5]],
            })
            if r.rc != 0:
                res["tail"] = (r.stdout + r.stderr)[-3000:]
            log(f"resume: killed after {first_wall:.1f} s ({delivered_before} answered, {in_flight} in flight, "
                f"{present} outputs on disk); rerun {res['wall_s']} s; duplicates paid twice: {len(dup_paid)}")
            return res
        finally:
            fake.stop()

    def rated(self, rpm: int, period: float, latency: float) -> dict[str, Any]:
        site = fresh_copy(self.source, self.work / f"rated-{self.n}", concurrency=self.concurrency,
                          rpm=rpm, period=period)
        fake = self._fake(latency, limit=rpm, period=period)
        try:
            log(f"rated: limit {rpm} requests per {period:g} s window (= {rpm * 60 / period:g}/min wall clock), "
                f"latency {latency:.3f} s, {self.expected} expected calls")
            r = run(self.cmd, cwd=site, env=_env(fake))
            res = _figures(fake, r, self.n, self.expected, site)
            acc = sorted(e["at"] for e in fake.snapshot() if e["status"] != 429)  # what the limit counted
            res.update(rate_figures(acc, rpm, period, r.wall))
            res.update({"limit": rpm, "period_s": period, "latency_s": latency})
            if r.rc != 0:
                res["tail"] = (r.stdout + r.stderr)[-3000:]
            log(f"rated: {res['wall_s']} s, utilisation {res['utilisation_pct']} %, 429s {res['http_429_at_fake']}")
            return res
        finally:
            fake.stop()


def rate_figures(times: list[float], limit: int, period: float, wall: float) -> dict[str, Any]:
    """How much of a `limit` per `period` budget requests sent at `times` (sorted) used.

    utilisation_pct (the headline, sustained rate / limit): period / mean(t[k] - t[k - limit]) over
    k >= limit. Each of the `limit` slots of the window is reused after that many seconds on average;
    a client that reuses every slot the moment it leaves the window scores 100 %.
    fixed_window_pct: mean count / limit over the complete `period`-long windows from the first request.
    burst_corrected_pct: (n - limit) / ((last - first) / period) / limit (penalises a partial last burst).
    overall_utilisation_pct: n / (build wall time / period) / limit, including start-up and the tail.
    peak_in_window: most requests in any `period`-long window (at most `limit`, or the server says 429).
    """
    n = len(times)
    peak = 0
    j = 0
    for i in range(n):
        while times[i] - times[j] >= period:
            j += 1
        peak = max(peak, i - j + 1)
    span = times[-1] - times[0] if n > 1 else 0.0
    gaps = [times[k] - times[k - limit] for k in range(limit, n)]
    util = period / (sum(gaps) / len(gaps)) * 100 if gaps else None
    full = int(span // period)
    fixed = None
    if full:
        counts = [0] * full
        for t in times:
            w = int((t - times[0]) // period)
            if w < full:
                counts[w] += 1
        fixed = sum(counts) / full / limit * 100
    burst = ((n - limit) / (span / period) / limit * 100) if n > limit and span > 0 else None
    r = lambda x: None if x is None else round(x, 1)  # noqa: E731
    return {
        "requests_sent": n, "peak_in_window": peak,
        "windows_elapsed": round(span / period, 2) if period else None,
        "utilisation_pct": r(util), "fixed_window_pct": r(fixed), "burst_corrected_pct": r(burst),
        "overall_utilisation_pct": r(n / (wall / period) / limit * 100) if wall else None,
        "arrivals_s": [round(t - times[0], 3) for t in times],
    }


def bench_llm(n: int, out: Path, latency: float, concurrency: int, rpm: int | None, period: float,
              scenarios: list[str], warm_runs: int = 3) -> dict[str, Any]:
    b = LLMBench(n, out, latency, concurrency, warm_runs)
    res: dict[str, Any] = {"materials": n, "latency_s": latency, "concurrency": concurrency,
                           "expected_calls": b.expected, "source": str(b.source), "load_before": loadavg()}
    if "nolimit" in scenarios:
        res["nolimit"] = b.nolimit()
    if "resume" in scenarios:
        res["resume"] = b.resume()
    if "rated" in scenarios and rpm:
        rated_latency = latency * period / 60.0
        res["rated"] = b.rated(rpm, period, rated_latency)
        res["rated"]["time_scale"] = round(60.0 / period, 3)
    res["load_after"] = loadavg()
    return res
