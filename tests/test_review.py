"""`site review` in a temporary git repository: what changed, its validators, its diff, exit codes;
and the batch path refusing the same defects as the live chain."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from generator import yamlio
from generator.hashing import output_sha
from tests.conftest import copy_site, run_site

GIT = ["git", "-c", "user.name=Reviewer", "-c", "user.email=reviewer@example.org", "-c", "commit.gpgsign=false"]


def git(root: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def repo(tmp_path: Path) -> Path:
    root = copy_site(tmp_path / "site", ["aluminum", "oak"])
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "site")
    return root


def regenerate(root: Path, component: str, slug: str, edit, *, by_hand: bool = False, **fields) -> None:
    """Change an output as a build would (hash updated, provider recorded) or as a person would."""
    path = root / f"content/components/{component}/{slug}.yaml"
    record = yaml.safe_load(path.read_text())
    record["output"] = edit(record["output"])
    if not by_hand:
        record["output_sha256"] = output_sha(record["output"])
    record.update(fields)
    path.write_text(yamlio.dump(record))


def test_nothing_changed_passes(tmp_path: Path) -> None:
    root = repo(tmp_path)
    result = run_site(root, "review")
    assert result.exit_code == 0, result.output
    assert "0 output(s) in content/components/ changed since HEAD" in result.output


def test_a_generated_output_that_fails_fails_the_review_with_its_diff(tmp_path: Path) -> None:
    root = repo(tmp_path)
    regenerate(root, "caption", "oak", lambda o: {**o, "before": o["before"] + " <script>alert(1)</script>"},
               provider="groq", model="llama-3.1-8b-instant")
    result = run_site(root, "review")
    assert result.exit_code == 1, result.output
    assert "content/components/caption/oak.yaml  (changed)  provider groq, model llama-3.1-8b-instant" in result.output
    assert "FAILED plain_text: before: contains an HTML tag '<script>'" in result.output
    assert "validators passed: schema, words, mentions_name" in result.output
    assert "--- HEAD:content/components/caption/oak.yaml" in result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert any(line.startswith("+") and "alert(1)" in line for line in lines)
    assert any(line.startswith("-") and not line.startswith("---") for line in lines)
    assert "1 output(s) fail today's validators" in result.output


def test_a_clean_change_passes_and_shows_its_diff(tmp_path: Path) -> None:
    root = repo(tmp_path)
    regenerate(root, "caption", "aluminum", lambda o: {**o, "after": o["after"].replace("preserved", "kept")},
               provider="ollama", model="llama3.2")
    result = run_site(root, "review")
    assert result.exit_code == 0, result.output
    assert "1 output(s) in content/components/ changed since HEAD" in result.output
    assert "provider ollama, model llama3.2" in result.output
    assert any(line.strip().startswith("+") and "is kept" in line for line in result.output.splitlines())
    assert "every generated output passes today's validators" in result.output


def test_a_failing_hand_edit_is_reported_but_does_not_fail(tmp_path: Path) -> None:
    root = repo(tmp_path)
    regenerate(root, "caption", "oak", lambda o: {**o, "before": o["before"] + " Order today for just $89.99."},
               by_hand=True)
    result = run_site(root, "review")
    assert result.exit_code == 0, result.output
    assert "(changed, kept: edited by hand)" in result.output
    assert "FAILED no_commerce" in result.output and "FAILED grounded_numbers" in result.output
    assert "1 kept output(s) do not" in result.output


def test_since_a_ref_untracked_outputs_and_committed_failures(tmp_path: Path) -> None:
    root = repo(tmp_path)
    regenerate(root, "tags", "oak", lambda o: {"tags": [*o["tags"][:7], "hardwood"]})
    git(root, "commit", "-qam", "tags")
    result = run_site(root, "review")
    assert result.exit_code == 0 and "0 output(s)" in result.output
    # a committed failure fails the review although nothing changed (CI reviews a clean checkout)...
    regenerate(root, "tags", "oak", lambda o: {"tags": [*o["tags"][:7], "buy now"]})
    git(root, "commit", "-qam", "tags again")
    result = run_site(root, "review")
    assert result.exit_code == 1 and "(unchanged)" in result.output and "no_commerce" in result.output
    # ...and --since lists what changed since then, with the diff against that commit
    result = run_site(root, "review", "--since", "HEAD~2")
    assert "1 output(s) in content/components/ changed since HEAD~2" in result.output
    assert "+- buy now" in result.output
    # a new, untracked output is listed too
    new = root / "content/components/bullets/oak.yaml"
    moved = new.read_text()
    new.unlink()
    git(root, "commit", "-qam", "no bullets")
    new.write_text(moved)
    result = run_site(root, "review")
    assert "content/components/bullets/oak.yaml  (new)" in result.output


def test_not_a_git_repository_or_an_unknown_ref_is_bad_input(tmp_path: Path) -> None:
    root = copy_site(tmp_path / "site", ["oak"])
    result = run_site(root, "review")
    assert result.exit_code == 2 and "not in a git repository" in result.output
    root = repo(tmp_path / "other")
    result = run_site(root, "review", "--since", "no-such-ref")
    assert result.exit_code == 2 and "'no-such-ref' is not a commit" in result.output
