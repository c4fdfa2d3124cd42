"""`site init DIR`: copy the starter site shipped in generator/scaffold/."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import InputError

STARTER = Path(__file__).parent / "scaffold"


def scaffold(directory: Path) -> list[Path]:
    if directory.exists() and any(directory.iterdir()):
        raise InputError(f"{directory} is not empty; `site init` only writes into a new or empty folder")
    created = []
    for src in sorted(STARTER.rglob("*")):
        if src.is_dir() or src.name == ".keep" or "__pycache__" in src.parts:
            continue
        dest = directory / src.relative_to(STARTER)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        created.append(dest)
    (directory / "data").mkdir(exist_ok=True)
    (directory / ".gitignore").write_text("build/\n.cache/\n")
    created.append(directory / ".gitignore")
    return created
