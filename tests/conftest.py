"""Shared fixtures: a copy of the repo's example site to build in, and a way to run `site`."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import main

REPO = Path(__file__).resolve().parent.parent
SITE_PARTS = ("site.yaml", "materials", "components", "layouts", "content", "data", "assets")


def copy_site(dest: Path, materials: list[str] | None = None) -> Path:
    """Copy the example site; with `materials` (slugs), keep only those materials and their outputs."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in SITE_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        elif src.is_file():
            shutil.copy2(src, dest / part)
    if materials is not None:
        for path in (dest / "materials").rglob("*.yaml"):
            if path.stem not in materials:
                path.unlink()
        for path in (dest / "content" / "components").rglob("*.yaml"):
            if path.stem not in materials:
                path.unlink()
    return dest


@dataclass
class Result:
    exit_code: int
    output: str  # stdout + stderr


def run_site(root: Path, *args: str, env: dict | None = None) -> Result:
    """Run the `site` CLI in-process (fast); output is what a user would see."""
    runner = CliRunner()
    result = runner.invoke(main, [*args, "--root", str(root)], env=env, catch_exceptions=False)
    return Result(result.exit_code, result.output)


def run_site_process(root: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `site` as a separate process, exactly as a user does."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "generator", *args, "--root", str(root)], capture_output=True,
                          text=True, env=full_env, timeout=timeout)


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the sha256 of its bytes (to prove nothing changed)."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def tree_stats(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


OFFLINE = {"SITE_LLM_CHAIN": "template"}


@pytest.fixture
def site_small(tmp_path: Path) -> Path:
    """A copy of the example with four materials in three categories."""
    return copy_site(tmp_path / "site", ["aluminum", "oak", "granite", "copper"])


@pytest.fixture(scope="session")
def built_example(tmp_path_factory) -> Path:
    """The whole example site, built once per session (frozen: its outputs are committed)."""
    root = copy_site(tmp_path_factory.mktemp("example") / "site")
    result = run_site(root, "build", "--frozen")
    assert result.exit_code == 0, result.output
    return root


def deliver_sigint() -> None:
    """Popen preexec_fn for children a test stops with SIGINT: a shell starts background jobs
    with SIGINT ignored, and a child inherits that, so Ctrl-C would never reach it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)

