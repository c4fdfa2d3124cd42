"""Scaled sites for the benchmarks, generated once and cached under <out>/sites/<N>.

A cached site is reused while its fingerprint (the example site's files + bench/scale.py) is
unchanged; when it changed, the site is re-scaled but its content/components are kept, so only
outputs whose inputs changed are produced again. Every use starts with
`site build --chain template`, which makes any stale LLM output fresh (a no-op when all are
fresh), so the measured `--frozen` builds always see a complete site.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from .common import REPO, log, run, site_command
from .scale import SITE_PARTS, scale_site

MARKER = ".bench-site.json"


def fingerprint() -> str:
    h = hashlib.sha256()
    files = [REPO / "bench" / "scale.py"]
    for part in (*SITE_PARTS, "materials"):
        p = REPO / part
        files += sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(REPO)).encode() + b"\0")
        h.update(f.read_bytes() if f.exists() else b"")
        h.update(b"\0")
    return h.hexdigest()


def ensure_site(n: int, out: Path) -> Path:
    """The scaled site of `n` materials with every LLM output present and fresh."""
    dest = out / "sites" / str(n)
    fp = fingerprint()
    marker = dest / MARKER
    reuse = False
    if marker.exists():
        try:
            reuse = json.loads(marker.read_text()).get("fingerprint") == fp
        except ValueError:
            pass
    if not reuse:
        kept = None
        if (dest / "content" / "components").is_dir():
            kept = out / "sites" / f".{n}.components"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.move(str(dest / "content" / "components"), str(kept))
        log(f"scaling the example site to {n} materials in {dest}")
        scale_site(n, dest)
        if kept is not None:
            shutil.move(str(kept), str(dest / "content" / "components"))
    log(f"N={n}: producing missing/stale LLM outputs with `site build --chain template`"
        + (" (takes ~20 s per 1,000 materials the first time)" if not reuse else ""))
    r = run([*site_command(), "build", "--chain", "template", "-q"], cwd=dest).check()
    log(f"N={n}: prepared in {r.wall:.1f} s")
    run([*site_command(), "build", "--frozen", "-q"], cwd=dest).check()
    if not reuse:
        marker.write_text(json.dumps({"fingerprint": fp, "n": n}) + "\n")
    return dest


def material_files(site: Path) -> list[Path]:
    return sorted(site.glob("materials/*/*.yaml"))
