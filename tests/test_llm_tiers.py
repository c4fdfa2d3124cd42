"""What a user of a local OpenAI-compatible server sees: `site build` and `site status` say which
tier wrote each component and why earlier tiers were left, the summary separates model answers
from template fills, and `--strict` (or `llm.strict`) makes a template fill a failure (exit 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_site, run_site
from tests.fakes import LLAMA_CPP_PYTHON, FakeOpenAI, Reply
from tests.llm_helpers import GoodModel, remove_outputs

MATERIALS = ["aluminum", "oak", "granite"]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = copy_site(tmp_path / "site", MATERIALS)
    remove_outputs(root)
    return root


@pytest.fixture
def server():
    with FakeOpenAI(response_formats=LLAMA_CPP_PYTHON) as fake:
        fake.responder = GoodModel()
        yield fake


def env(fake: FakeOpenAI) -> dict:
    return {"OPENAI_BASE_URL": fake.base_url, "SITE_LLM_CHAIN": "openai,template"}


def provider(root: Path, component: str, slug: str) -> str:
    return yaml.safe_load((root / "content/components" / component / f"{slug}.yaml").read_text())["provider"]


def test_llama_cpp_server_answers_after_the_mode_is_negotiated(site, server) -> None:
    result = run_site(site, "build", env=env(server))
    assert result.exit_code == 0, result.output
    assert "openai: structured output json_schema refused (HTTP 500:" in result.output
    assert "Input should be 'text' or 'json_object'" in result.output
    assert "12 LLM outputs stored (12 model answers, 0 template fills)" in result.output
    assert provider(site, "caption", "oak") == "openai"
    # json_schema refused by the requests in flight at once (concurrency 2), never asked again
    assert 1 <= len(server.refused) <= 2 and len(server.chat_calls()) == 12 + len(server.refused)
    status = run_site(site, "status", env=env(server))
    assert status.exit_code == 0, status.output
    assert "LLM outputs by tier: openai 12" in status.output
    assert "structured output json_object_schema in the last build" in status.output


def test_template_fills_say_why_and_strict_refuses_them(site, server) -> None:
    server.responder = lambda body: Reply(status=500, error="llama_decode: failed to find a memory slot")
    result = run_site(site, "build", env=env(server))
    assert result.exit_code == 0, result.output
    assert "12 LLM outputs stored (0 model answers, 12 template fills)" in result.output
    line = next(li for li in result.output.splitlines() if li.startswith("tier: caption/oak: "))
    assert line.startswith("tier: caption/oak: template after openai: ") and "HTTP 500 from http://127.0.0.1:" in line
    assert "failed to find a memory slot" in line
    status = run_site(site, "status", "--no-health", env=env(server))
    assert "LLM outputs by tier: template 12" in status.output
    line = next(li for li in status.output.splitlines() if li.split()[:2] == ["caption", "oak"])
    assert "template" in line and "openai: " in line and "HTTP 500" in line and "memory slot" in line
    # The fills are fresh now; a strict build still refuses them.
    strict = run_site(site, "build", "--strict", env=env(server))
    assert strict.exit_code == 1, strict.output
    assert "caption:oak: written by the template tier in an earlier build (strict)" in strict.output


def test_strict_build_writes_no_template_text(site, server) -> None:
    server.responder = lambda body: Reply(status=500, error="model crashed")
    result = run_site(site, "build", "--strict", env=env(server))
    assert result.exit_code == 1, result.output
    assert "failed: caption:oak:" in result.output and "template: not used (strict" in result.output
    assert not list((site / "content/components").rglob("*.yaml"))
    assert (site / "build/wood/oak/index.html").is_file()  # the rest was built


def test_strict_in_site_yaml(site, server) -> None:
    config = site / "site.yaml"
    config.write_text(config.read_text().replace("  repair_retries: 2\n", "  repair_retries: 2\n  strict: true\n"))
    server.responder = lambda body: Reply(status=500, error="model crashed")
    result = run_site(site, "build", env=env(server))
    assert result.exit_code == 1, result.output
    assert "template: not used (strict" in result.output
    config.write_text(config.read_text().replace("  strict: true\n", "  strict: maybe\n"))
    bad = run_site(site, "build", env=env(server))
    assert bad.exit_code == 2 and "llm.strict" in bad.output
