"""Shared bits of the benchmarks: running `site` as a subprocess with wall time, CPU and peak RSS,
machine facts and load, medians, markdown tables and the JSON results file."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "out"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def log(msg: str) -> None:
    """Progress goes to stderr; stdout carries only the final table."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def site_command() -> list[str]:
    """`site` as a user runs it: the console script next to this interpreter (the venv's)."""
    script = Path(sys.executable).parent / "site"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "generator"]


# ---------------------------------------------------------------------------- machine & load


def _cpu_busy_seconds() -> float:
    """All-core busy CPU seconds since boot (user+nice+system+irq+softirq+steal)."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
        v = [int(x) for x in parts[1:]]
        return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "nproc": NCPU,
        "cpu": cpu,
        "mem_gb": mem_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "engine": engine_version(),
    }


def engine_version() -> dict[str, Any]:
    """The commit measured and the engine files that differ from it (others edit generator/)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "generator").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "generator_uncommitted": dirty}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_probe() -> float:
    """Seconds for a fixed pure-Python loop (10M additions), best of 3: this VM's speed drifts by
    up to 4x within an hour with no load or steal time to show for it, so every figure is
    read next to the probe taken around it."""
    import time

    best = float("inf")
    for _ in range(3):
        start, total = time.perf_counter(), 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return round(best, 3)


# ---------------------------------------------------------------------------- running


@dataclass
class Run:
    cmd: list[str]
    rc: int
    wall: float  # seconds
    cpu: float  # user+sys seconds of the child
    maxrss_mb: float  # peak resident set of the child
    other_busy_pct: float  # CPU used by *other* processes during the run, % of all cores
    stdout: str
    stderr: str

    def check(self, ok: Iterable[int] = (0,)) -> "Run":
        if self.rc not in tuple(ok):
            tail = (self.stdout[-2000:] + "\n" + self.stderr[-3000:]).strip()
            raise RuntimeError(f"{' '.join(self.cmd)} exited {self.rc}:\n{tail}")
        return self


def run(cmd: Sequence[str], cwd: Path | None = None, env: dict | None = None,
        timeout: float | None = None) -> Run:
    """Run `cmd`, measuring wall time and (via wait4) the child's own CPU time and peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy0 = _cpu_busy_seconds()
        t0 = time.perf_counter()
        p = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG if deadline else 0)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        busy1 = _cpu_busy_seconds()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = ru.ru_utime + ru.ru_stime
        other = max(0.0, (busy1 - busy0 - cpu) / (wall * NCPU) * 100) if wall > 0 else 0.0
        return Run(list(cmd), p.returncode, wall, cpu, ru.ru_maxrss / 1024, round(other, 1),
                   out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


@dataclass
class Measure:
    """Several runs of one operation."""

    name: str
    times: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # user+sys of the build process
    other_busy_pct: list[float] = field(default_factory=list)
    note: str = ""
    last_output: str = ""
    outputs: list[str] = field(default_factory=list)  # the summary line of every run

    def add(self, r: Run) -> None:
        self.times.append(round(r.wall, 4))
        self.rss_mb.append(round(r.maxrss_mb, 1))
        self.cpu_s.append(round(r.cpu, 3))
        self.other_busy_pct.append(r.other_busy_pct)
        self.last_output = (r.stdout.strip().splitlines() or [""])[-1][:300]
        self.outputs.append(self.last_output)

    @property
    def median(self) -> float | None:
        return median(self.times)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["median"] = None if self.median is None else round(self.median, 4)
        d["peak_rss_mb"] = max(self.rss_mb) if self.rss_mb else None
        d["max_other_busy_pct"] = max(self.other_busy_pct) if self.other_busy_pct else None
        return d


# ---------------------------------------------------------------------------- output


def fmt_s(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [["—" if c is None else str(c) for c in r] for r in rows]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_results(out: Path, kind: str, data: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / f"results-{kind}-{stamp}.json"
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    path.write_text(text + "\n", encoding="utf-8")
    (out / f"results-{kind}-latest.json").write_text(text + "\n", encoding="utf-8")
    return path


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
