"""The smaller commands: init, status, check on the example, cache, and the publish workflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from generator.cli import main
from tests.conftest import REPO, copy_site, run_site, run_site_process
from tests.test_check import workflow_site_commands


def test_init_makes_a_site_that_builds_and_checks(tmp_path: Path) -> None:
    root = tmp_path / "new-site"
    result = CliRunner().invoke(main, ["init", str(root)])  # init takes DIR, not --root
    assert result.exit_code == 0, result.output
    assert (root / "site.yaml").is_file() and (root / "materials/metal/aluminum.yaml").is_file()
    built = run_site(root, "build", "--chain", "template")
    assert built.exit_code == 0, built.output
    assert (root / "build/metal/aluminum/index.html").is_file()
    assert "provider: template" in (root / "content/components/summary/aluminum.yaml").read_text()
    assert run_site(root, "check").exit_code == 0
    again = CliRunner().invoke(main, ["init", str(root)])
    assert again.exit_code == 2 and "not empty" in again.output


def test_status_explains_what_is_stale(site_small: Path) -> None:
    assert run_site(site_small, "build", "--frozen").exit_code == 0
    result = run_site(site_small, "status", "--no-health")
    assert result.exit_code == 0
    assert "LLM components: 16 fresh, 0 not fresh" in result.output
    assert "Output files to render: 0" in result.output
    path = site_small / "layouts/category.html"
    path.write_text(path.read_text() + "\n")
    (site_small / "content/components/caption/copper.yaml").unlink()
    result = run_site(site_small, "status", "--no-health")
    assert "caption      copper" in result.output and "no output yet" in result.output
    assert "metal/index.html" in result.output and "inputs changed" in result.output
    assert "make about 1 call" in result.output


def test_status_reports_provider_health(site_small: Path) -> None:
    result = run_site(site_small, "status", env={"OLLAMA_HOST": "http://127.0.0.1:9", "GROQ_API_KEY": ""})
    assert result.exit_code == 0
    assert "ollama" in result.output and "unavailable" in result.output


def test_check_passes_on_the_built_example(built_example: Path) -> None:
    result = run_site(built_example, "check")
    assert result.exit_code == 0, result.output


def test_check_catches_a_broken_link_on_a_built_page(built_example: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(built_example, root)
    page = root / "build/metal/aluminum/index.html"
    page.write_text(page.read_text().replace('href="/site/metal/"', 'href="/site/metals/"', 1))
    result = run_site(root, "check")
    assert result.exit_code == 1
    assert "build/metal/aluminum/index.html" in result.output and "/site/metals/" in result.output


def test_check_before_build_says_what_to_do(site_small: Path) -> None:
    result = run_site(site_small, "check")
    assert result.exit_code == 2 and "run `site build` first" in result.output


def test_publish_workflow_commands_run_in_order(tmp_path: Path) -> None:
    """The workflow's `site` commands, in order, on a fresh copy of the example (as CI would)."""
    root = copy_site(tmp_path / "site")
    git = ["git", "-c", "user.name=CI", "-c", "user.email=ci@example.org", "-c", "commit.gpgsign=false", "-C", str(root)]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "site"]):  # CI checks out a repository
        subprocess.run([*git, *args], check=True, capture_output=True)
    commands = workflow_site_commands(REPO / ".github/workflows/publish.yml")
    assert [c[:2] for c in commands] == [["site", "review"], ["site", "build"], ["site", "check"]]
    for argv in commands:
        result = run_site_process(root, *argv[1:])
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    assert (root / "build/index.html").is_file()


def test_frozen_workflow_fails_when_llm_content_is_missing(tmp_path: Path) -> None:
    root = copy_site(tmp_path / "site", ["aluminum"])
    (root / "content/components/tags/aluminum.yaml").unlink()
    result = run_site_process(root, "build", "--frozen")
    assert result.returncode == 3
    assert "content/components/tags/aluminum.yaml" in result.stderr


def test_cache_stats_and_clear(site_small: Path) -> None:
    (site_small / "content/components/caption/oak.yaml").unlink()
    assert run_site(site_small, "build", "--chain", "template").exit_code == 0
    stats = run_site(site_small, "cache", "stats")
    assert stats.exit_code == 0 and "entries" in stats.output
    cleared = run_site(site_small, "cache", "clear", "--yes")
    assert cleared.exit_code == 0 and "removed" in cleared.output


def test_version_and_help() -> None:
    out = subprocess.run([sys.executable, "-m", "generator", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("build", "status", "regen", "watch", "serve", "check", "init", "cache", "batch"):
        assert command in out.stdout
