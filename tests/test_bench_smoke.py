"""Smoke test of the benchmark entry point (`python -m bench`) at tiny sizes, so it cannot rot.

The real runs (N = 1k ... 20k, 109 materials at 3.3 s latency) are not part of the test suite;
see BENCHMARKS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args, "--quick", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def _assert_table(p: subprocess.CompletedProcess, heading: str) -> None:
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    assert heading in p.stdout
    assert "|---|" in p.stdout  # a markdown table


def test_static_quick(tmp_path: Path) -> None:
    p = _bench(tmp_path, "static")
    _assert_table(p, "## Static build")
    for op in ("cold", "no-op", "one-material edit (author)", "one-layout edit", "one-component-template edit"):
        assert f"| {op}" in p.stdout
    data = json.loads((tmp_path / "results-static-latest.json").read_text())
    ops = data["sizes"][0]["ops"]
    assert "nothing to do" in ops["no-op"]["note"]
    assert "1 rendered" in ops["one-material edit (author)"]["note"]
    assert not any(data["sizes"][0]["noop_imports"][m] for m in ("groq", "ollama", "openai"))


def test_llm_quick(tmp_path: Path) -> None:
    p = _bench(tmp_path, "llm")
    _assert_table(p, "## LLM pipeline")
    data = json.loads((tmp_path / "results-llm-6-latest.json").read_text())
    run = data["run"]
    assert run["nolimit"]["rc"] == 0 and run["nolimit"]["unknown_keys"] == 0
    assert run["nolimit"]["warm"]["calls_at_fake"] == 0
    assert run["resume"]["rc"] == 0 and run["resume"]["outputs_written"] == run["expected_calls"]
    assert run["rated"]["http_429_at_fake"] == 0
