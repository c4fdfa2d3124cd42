"""How much of a one-material edit is the garbage collector: `python -m bench.gc_probe SITE [RUNS]`.

On a cached scaled site (bench/out/sites/N), flips one material's `author` before each run and
times an in-process `generator.build.build(frozen=True)` in a fresh interpreter with the GC on,
off (`gc.disable()`) and with a high threshold; restores the material afterwards. Prints
`mode seconds pages-rendered` per run. A probe for BENCHMARKS.md, not part of `python -m bench`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from .common import REPO

CODE = r"""
import gc, sys, time
sys.path.insert(0, {repo!r})
mode = sys.argv[2]
if mode == "off":
    gc.disable()
elif mode == "threshold":
    gc.set_threshold(100000, 50, 100)
from pathlib import Path
from generator.build import BuildOptions, build
t = time.perf_counter()
r = build(Path(sys.argv[1]), BuildOptions(frozen=True, quiet=True))
print(f"{{time.perf_counter() - t:.3f}} {{len(r.rendered)}}")
"""


def main(argv: list[str]) -> None:
    site = Path(argv[0]).resolve()
    runs = int(argv[1]) if len(argv) > 1 else 6
    files = sorted(site.glob("materials/*/*.yaml"))
    target = files[len(files) // 2]
    original = target.read_bytes()
    authors = list(yaml.safe_load((site / "data" / "authors.yaml").read_text(encoding="utf-8")))
    data = yaml.safe_load(original)
    code = CODE.format(repo=str(REPO))
    try:
        for i in range(runs):
            mode = ("on", "off", "threshold")[i % 3]
            current = yaml.safe_load(target.read_text(encoding="utf-8")).get("author")
            data["author"] = next(a for a in authors if a != current)
            target.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
            p = subprocess.run([sys.executable, "-c", code, str(site), mode], capture_output=True, text=True)
            print(mode, p.stdout.strip() or p.stderr[-500:], flush=True)
    finally:
        target.write_bytes(original)
        subprocess.run([sys.executable, "-m", "generator", "build", "--frozen", "-q", "--root", str(site)], cwd=REPO)


if __name__ == "__main__":
    main(sys.argv[1:])
