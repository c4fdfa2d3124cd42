"""LLM components through `site build` / `site regen`, against loopback fake Ollama and Groq.

Calls are counted at the fake servers; what a user sees is files written, pages rendered,
exit codes and messages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_site, run_site
from tests.fakes import FakeGroq, FakeOllama, Reply
from tests.llm_helpers import GoodModel, all_text_under, component_of, remove_outputs

MATERIALS = ["aluminum", "oak", "granite"]
GROQ_KEY = "gsk_test_SECRET_do_not_leak_42"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = copy_site(tmp_path / "site", MATERIALS)
    remove_outputs(root)
    # The example's Groq limits are the free tier's (6,000 tokens/minute): lift them for speed.
    config = root / "site.yaml"
    config.write_text(config.read_text().replace("rpm: 30, tpm: 6000", "rpm: null, tpm: null"))
    return root


@pytest.fixture
def ollama():
    with FakeOllama(models=["llama3.2:latest"]) as fake:
        fake.responder = GoodModel()
        yield fake


@pytest.fixture
def groq():
    with FakeGroq(api_key=GROQ_KEY) as fake:
        fake.responder = GoodModel()
        yield fake


def env_for(ollama=None, groq=None, chain="ollama,groq") -> dict:
    closed = "http://127.0.0.1:9"  # nothing listens on the discard port: connection refused
    return {"OLLAMA_HOST": ollama.url if ollama else closed, "GROQ_BASE_URL": groq.url if groq else closed,
            "GROQ_API_KEY": GROQ_KEY, "SITE_LLM_CHAIN": chain}


def output(root: Path, component: str, slug: str) -> dict:
    return yaml.safe_load((root / "content/components" / component / f"{slug}.yaml").read_text())


def test_cold_build_generates_every_component_then_warm_build_calls_nothing(site, ollama) -> None:
    result = run_site(site, "build", env=env_for(ollama))
    assert result.exit_code == 0, result.output
    assert len(ollama.chat_calls()) == 12  # 3 materials x 4 LLM components
    record = output(site, "caption", "oak")
    assert record["provider"] == "ollama" and record["model"].startswith("llama3.2")
    assert record["usage"]["completion_tokens"] > 0
    assert "Under magnification" in (site / "build/wood/oak/index.html").read_text()
    # Warm: every output fresh, no call (not even the health check is needed).
    assert run_site(site, "build", env=env_for(ollama)).exit_code == 0
    assert len(ollama.chat_calls()) == 12
    # Outputs deleted but the cache kept: answered from the cache, still no call.
    remove_outputs(site)
    result = run_site(site, "build", env=env_for(ollama))
    assert result.exit_code == 0, result.output
    assert len(ollama.chat_calls()) == 12
    assert output(site, "caption", "oak")["provider"] == "ollama"


def test_only_the_edited_inputs_cost_calls(site, ollama) -> None:
    assert run_site(site, "build", env=env_for(ollama)).exit_code == 0
    before = len(ollama.chat_calls())
    path = site / "materials/wood/oak.yaml"
    path.write_text(path.read_text().replace("contaminants: [", "contaminants: [lichen, "))
    assert run_site(site, "build", env=env_for(ollama)).exit_code == 0
    # contaminants feed caption and tags only.
    asked = [c.body["format"]["properties"] for c in ollama.chat_calls()[before:]]
    assert sorted(next(iter(p)) for p in asked) == ["before", "tags"]


def test_ollama_down_falls_back_to_groq(site, groq) -> None:
    result = run_site(site, "build", env=env_for(groq=groq))
    assert result.exit_code == 0, result.output
    assert len(groq.chat_calls()) == 12
    assert output(site, "bullets", "granite")["provider"] == "groq"
    # The answers came from groq; a later build with ollama up reuses them, calling nobody.
    with FakeOllama(models=["llama3.2:latest"]) as back:
        assert run_site(site, "build", env=env_for(back, groq)).exit_code == 0
        assert back.chat_calls() == []


def test_api_key_never_reaches_files_or_output(site, groq) -> None:
    result = run_site(site, "build", env=env_for(groq=groq))
    assert result.exit_code == 0
    assert GROQ_KEY not in result.output
    assert GROQ_KEY not in all_text_under(site / ".cache", site / "content", site / "build")
    status = run_site(site, "status", env=env_for(groq=groq))
    assert GROQ_KEY not in status.output


def test_component_nothing_can_produce_fails_alone(site, ollama) -> None:
    good = ollama.responder

    def refuse_captions(request: dict):
        if "before" in request["format"]["properties"]:
            return Reply(content="Sure! Here is your caption: TBD")
        return good(request)

    ollama.responder = refuse_captions
    result = run_site(site, "build", env=env_for(ollama, chain="ollama"))
    assert result.exit_code == 1
    assert "caption:oak" in result.output and "failed" in result.output
    assert not (site / "content/components/caption/oak.yaml").exists()
    assert (site / "content/components/bullets/oak.yaml").exists()
    assert (site / "build/wood/oak/index.html").is_file()  # built without its caption


def test_frozen_makes_no_call_and_lists_what_is_stale(site, ollama) -> None:
    result = run_site(site, "build", "--frozen", env=env_for(ollama))
    assert result.exit_code == 3
    assert ollama.calls == []
    for slug in MATERIALS:
        for component in ("frontmatter", "caption", "bullets", "tags"):
            assert f"content/components/{component}/{slug}.yaml" in result.output


def test_regen_takes_a_fresh_sample_and_rebuilds_its_page(site, ollama) -> None:
    assert run_site(site, "build", env=env_for(ollama)).exit_code == 0
    calls = len(ollama.chat_calls())
    page = site / "build/wood/oak/index.html"
    good = ollama.responder
    ollama.responder = lambda req: (good(req).replace("Under magnification", "Seen up close")
                                    if "before" in req["format"]["properties"] else good(req))
    result = run_site(site, "regen", "--component", "caption", "--material", "oak", env=env_for(ollama))
    assert result.exit_code == 0, result.output
    assert len(ollama.chat_calls()) == calls + 1  # a fresh sample, not a cache hit
    assert output(site, "caption", "oak")["output"]["before"].startswith("Seen up close")
    assert "Seen up close" in page.read_text()
    assert "Seen up close" not in (site / "build/metal/aluminum/index.html").read_text()


def test_regen_keeps_hand_edits_unless_forced(site, ollama) -> None:
    assert run_site(site, "build", env=env_for(ollama)).exit_code == 0
    path = site / "content/components/caption/oak.yaml"
    record = yaml.safe_load(path.read_text())
    record["output"]["after"] = record["output"]["after"] + " Reviewed by hand."
    path.write_text(yaml.safe_dump(record, sort_keys=False, allow_unicode=True))
    calls = len(ollama.chat_calls())
    result = run_site(site, "regen", "--component", "caption", "--category", "wood", env=env_for(ollama))
    assert result.exit_code == 0
    assert "edited by hand" in result.output and len(ollama.chat_calls()) == calls
    assert "Reviewed by hand." in path.read_text()
    # An input change makes it stale, but a build keeps it and says so.
    material = site / "materials/wood/oak.yaml"
    material.write_text(material.read_text().replace("contaminants: [", "contaminants: [lichen, "))
    result = run_site(site, "build", env=env_for(ollama))
    assert "stale but kept" in result.output and "Reviewed by hand." in path.read_text()
    result = run_site(site, "regen", "--component", "caption", "--material", "oak", "--force", env=env_for(ollama))
    assert result.exit_code == 0 and "Reviewed by hand." not in path.read_text()


def test_sigkill_mid_build_then_rerun_pays_for_no_call_twice(site, ollama) -> None:
    good = ollama.responder
    ollama.responder = lambda req: Reply(content=good(req), delay=0.15)
    env = {**os.environ, **env_for(ollama, chain="ollama")}
    proc = subprocess.Popen([sys.executable, "-m", "generator", "build", "--root", str(site)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ollama.wait_for_calls(5, timeout=30)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    before_kill = len(ollama.chat_calls())
    assert before_kill < 12, "the build finished before it was killed"
    # Every answer that arrived before the kill was written at once...
    kept = {(p.parent.name, p.stem) for p in (site / "content/components").rglob("*.yaml")}
    assert kept, "no answer was persisted before the kill"
    ollama.responder = good
    result = run_site(site, "build", env=env_for(ollama, chain="ollama"))
    assert result.exit_code == 0, result.output
    # ...so the rerun asks only for what had not arrived (requests in flight at the kill included).
    model = GoodModel()
    names = {yaml.safe_load(p.read_text())["name"]: p.stem for p in (site / "materials").rglob("*.yaml")}
    rerun = [(component_of(c.body), names[model.material_of(c.body)]) for c in ollama.chat_calls()[before_kill:]]
    assert not set(rerun) & kept, "an answer already paid for was asked again"
    # (An answer cached just before the kill, its file not yet written, comes from the cache.)
    assert len(rerun) == len(set(rerun)) <= 12 - len(kept)
    assert len(list((site / "content/components").rglob("*.yaml"))) == 12


def test_two_builds_at_once_do_not_corrupt_each_other(site, ollama) -> None:
    good = ollama.responder
    ollama.responder = lambda req: Reply(content=good(req), delay=0.05)
    env = {**os.environ, **env_for(ollama, chain="ollama")}
    cmd = [sys.executable, "-m", "generator", "build", "--root", str(site)]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ollama.wait_for_calls(1, timeout=30)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    out_first, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out_first
    assert second.returncode == 0, second.stdout + second.stderr
    assert "waiting" in second.stderr
    assert len(ollama.chat_calls()) == 12  # the second build found everything fresh


def test_jobs_sets_concurrency_per_provider(site, ollama) -> None:
    good = ollama.responder
    ollama.responder = lambda req: Reply(content=good(req), delay=0.05)
    result = run_site(site, "build", "--jobs", "4", env=env_for(ollama, chain="ollama"))
    assert result.exit_code == 0, result.output
    assert ollama.max_in_flight == 4  # site.yaml says 2 for ollama


def test_site_prompt_prints_exactly_what_the_model_receives(site, ollama) -> None:
    assert run_site(site, "build", env=env_for(ollama)).exit_code == 0
    sent = [c.body for c in ollama.chat_calls() if component_of(c.body) == "caption" and "Oak" in str(c.body)]
    assert len(sent) == 1
    user = next(m["content"] for m in sent[0]["messages"] if m["role"] == "user")
    # The fact sheet is one fact per line (a Jinja whitespace setting once ran these together).
    assert "\n- Name: Oak\n- Category: Woods\n" in user
    assert "\nPhysical properties:\n- density: 0.75 g/cm³\n" in user
    shown = run_site(site, "prompt", "caption", "oak")
    assert shown.exit_code == 0, shown.output
    assert shown.output.split("--- user ---\n", 1)[1].rstrip("\n") == user
    assert "status fresh" in shown.output.splitlines()[0]
    wrong = run_site(site, "prompt", "table", "oak")
    assert wrong.exit_code == 2 and "not an llm component" in wrong.output
