"""Scale the example site to N materials: `python -m bench.scale N DEST`.

Materials are the example's 109, cycled: copy k of a material gets the slug `<slug>-k`, the name
`<Name> (k)` and its numeric data nudged by a few percent, so every page is distinct and
realistic. LLM outputs are then produced through the tool itself by the offline template tier
(`site build --chain template`), so they are fresh and pass every validator.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SITE_PARTS = ("site.yaml", "components", "layouts", "content/pages", "data", "assets")


def _nudge(value, factor: float):
    if isinstance(value, dict):
        return {k: _nudge(v, factor) if k in ("value", "min", "max") or isinstance(v, dict) else v
                for k, v in value.items()}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return round(value * factor, 3) if isinstance(value, float) else value


def scale_site(n: int, dest: Path) -> Path:
    """Write a site of `n` materials into `dest` (without LLM outputs)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for part in SITE_PARTS:
        src = REPO / part
        target = dest / part
        if src.is_dir():
            shutil.copytree(src, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    base = sorted(REPO.glob("materials/*/*.yaml"))
    for i in range(n):
        src = base[i % len(base)]
        copy = i // len(base)
        data = yaml.safe_load(src.read_text(encoding="utf-8"))
        slug = src.stem if copy == 0 else f"{src.stem}-{copy}"
        if copy:
            data["name"] = f"{data['name']} ({copy})"
            factor = 1 + ((copy * 7919) % 97 - 48) / 2400  # within ±2 %
            for group in ("properties",):
                data[group] = {k: _nudge(v, factor) for k, v in data.get(group, {}).items()}
        out = dest / "materials" / data["category"] / f"{slug}.yaml"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return dest


def main(argv: list[str]) -> None:
    n, dest = int(argv[0]), Path(argv[1])
    scale_site(n, dest)
    print(f"wrote {n} materials to {dest}")


if __name__ == "__main__":
    main(sys.argv[1:])
