"""`site build --batch` through the Groq Batch API (SPEC §4.4), end to end: the real CLI, the
official `groq` client and the loopback FakeGroq (files, batches, status by poll count, shuffled
output lines, error lines, json_validate_failed lines, expiry, validation failures).

The fake answers from the repository's committed outputs (they are fresh for the current inputs),
picked by the request's component (the json_schema name) and the material named in its prompt;
`Answers.bad` scripts wrong answers first for chosen (component, slug).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from generator.errors import InputError
from generator.llm import LLM_SETTINGS_SCHEMA, LLMSettings
from tests.conftest import REPO, copy_site, run_site
from tests.fakes import BatchPlan, FakeGroq, Reply

SECRET = "gsk_BATCH_SECRET_do_not_leak_0123456789"
NAMES = {"Aluminum": "aluminum", "Oak": "oak"}
LEVEL1 = [(c, s) for c in ("bullets", "caption", "tags") for s in ("aluminum", "oak")]  # stale with frontmatter kept
STRONG = "llama-3.3-70b-versatile"
LINE_BODY_KEYS = {"model", "messages", "temperature", "max_completion_tokens", "seed", "response_format"}


def committed() -> dict[tuple[str, str], dict]:
    """(component, slug) -> the repository's output record for the two materials."""
    out = {}
    for path in (REPO / "content" / "components").glob("*/*.yaml"):
        if path.stem in NAMES.values():
            rec = yaml.safe_load(path.read_text(encoding="utf-8"))
            out[(rec["component"], rec["material"])] = rec
    return out


COMMITTED = committed()
KEY = {ident: rec["key"] for ident, rec in COMMITTED.items()}
IDENT = {key: ident for ident, key in KEY.items()}


def identify(body: dict) -> tuple[str, str]:
    component = body["response_format"]["json_schema"]["name"]
    user = " ".join(m["content"] for m in body["messages"] if m["role"] == "user")
    [slug] = [slug for name, slug in NAMES.items() if re.search(rf"\b{name}\b", user)]
    return component, slug


class Answers:
    """The fake's responder (live calls and batch lines alike)."""

    def __init__(self) -> None:
        self.bad: dict[tuple[str, str], list] = {}
        self.asked: list[tuple[str, str, str]] = []  # (component, slug, model)

    def __call__(self, body: dict):
        ident = identify(body)
        self.asked.append((*ident, body["model"]))
        queue = self.bad.get(ident)
        if queue:
            return queue.pop(0)
        return COMMITTED[ident]["output"]


@pytest.fixture
def fg():
    with FakeGroq(api_key=SECRET) as fake:
        fake.responder = Answers()
        yield fake


def env(fake: FakeGroq) -> dict:
    return {"GROQ_BASE_URL": fake.url, "GROQ_API_KEY": SECRET, "SITE_LLM_CHAIN": None}


def make_site(tmp_path: Path, *, keep=("frontmatter",), batch: dict | None = None, prices: dict | None = None,
              name: str = "site") -> Path:
    """Aluminum and oak with their LLM outputs removed except `keep` (frontmatter kept: one level of
    six stale requests; nothing kept: two levels, since tags depend on frontmatter)."""
    root = copy_site(tmp_path / name, list(NAMES.values()))
    for folder in (root / "content" / "components").iterdir():
        if folder.name not in keep:
            shutil.rmtree(folder)
    config = yaml.safe_load((root / "site.yaml").read_text(encoding="utf-8"))
    llm = config["llm"]
    llm["providers"]["groq"].update(timeout=5, connect_timeout=1, rpm=None, tpm=None)
    llm["batch"] = {"poll_interval": 0.01, "max_poll_interval": 0.02, **(batch or {})}
    if prices is not None:
        llm["prices"] = prices
    (root / "site.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return root


def outputs(root: Path) -> dict[tuple[str, str], dict]:
    out = {}
    for path in (root / "content" / "components").glob("*/*.yaml"):
        rec = yaml.safe_load(path.read_text(encoding="utf-8"))
        out[(rec["component"], rec["material"])] = rec
    return out


def assert_all_written(root: Path, idents=LEVEL1) -> dict[tuple[str, str], dict]:
    got = outputs(root)
    for ident in idents:
        assert ident in got, f"{ident} not written"
        assert got[ident]["output"] == COMMITTED[ident]["output"], ident
        assert got[ident]["key"] == KEY[ident]
    assert (root / "build" / "metal" / "aluminum" / "index.html").is_file()
    assert (root / "build" / "wood" / "oak" / "index.html").is_file()
    return got


def input_lines(fake: FakeGroq) -> list[tuple[str, int, dict]]:
    """(batch id, line number, line) of every batch input file the fake received."""
    out = []
    for b in fake.batches.values():
        text = fake.files[b.input_file_id].content.decode("utf-8")
        for n, line in enumerate(text.splitlines(), start=1):
            out.append((b.id, n, json.loads(line)))
    return out


def live_keys(fake: FakeGroq) -> list[str]:
    """The content key of each live chat call, matched on its messages to the batch lines."""
    by_messages = {json.dumps(line["body"]["messages"], sort_keys=True): line["custom_id"]
                   for _bid, _n, line in input_lines(fake)}
    return [by_messages[json.dumps(c.body["messages"], sort_keys=True)] for c in fake.chat_calls()]


def state_file(root: Path) -> Path:
    return root / ".cache" / "batch" / "batch.json"


def ok(result) -> None:
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output


# ---- the happy path -----------------------------------------------------------------------------


def test_every_stale_component_through_batches_and_no_live_call(tmp_path, fg):
    root = make_site(tmp_path, keep=())
    result = run_site(root, "build", "--batch", "--chain", "groq", env=env(fg))
    ok(result)
    # tags depend on frontmatter: one batch per dependency level, each submitted once
    assert fg.batches_created == 2
    assert fg.chat_calls() == []
    got = assert_all_written(root, list(COMMITTED))
    assert {rec["provider"] for rec in got.values()} == {"groq-batch"}
    assert "groq-batch" in result.output and "submitted batch" in result.output
    assert not state_file(root).exists() and list((root / ".cache" / "batch").iterdir()) == []
    # the JSONL lines: custom_id = the content key, body = a live call's body
    lines = input_lines(fg)
    assert sorted(line["custom_id"] for _b, _n, line in lines) == sorted(KEY.values())
    for _bid, _n, line in lines:
        assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
        body = line["body"]
        assert set(body) == LINE_BODY_KEYS, body.keys()
        assert body["model"] == "llama-3.1-8b-instant"
        assert body["response_format"]["json_schema"]["name"] == IDENT[line["custom_id"]][0]
    # everything is fresh now: --frozen agrees
    ok(run_site(root, "build", "--frozen"))


def test_cost_estimate_shows_the_batch_discount(tmp_path, fg):
    prices = {"groq:llama-3.1-8b-instant": {"input": 1000, "output": 1000}}
    root = make_site(tmp_path, batch={"discount": 0.25}, prices=prices)
    result = run_site(root, "build", "--batch", "--chain", "groq", env=env(fg))
    ok(result)
    # 6 lines x (30 + 40) tokens x $1000/M = $0.42, less 25%
    row = next(line for line in result.output.splitlines() if "groq-batch" in line and "$" in line)
    assert "$0.3150" in row and re.search(r"groq-batch\s*│\s*6\s*│\s*6\s*│", row), row
    assert "25% batch discount" in result.output


def test_cached_answers_are_not_batched_again(tmp_path, fg):
    root = make_site(tmp_path)
    ok(run_site(root, "build", "--batch", "--chain", "groq", env=env(fg)))
    for ident in LEVEL1:
        (root / "content" / "components" / ident[0] / f"{ident[1]}.yaml").unlink()
    result = run_site(root, "build", "--batch", "--chain", "groq", env=env(fg))
    ok(result)
    assert fg.batches_created == 1 and fg.chat_calls() == []
    assert_all_written(root)


def test_regen_batch_asks_again_even_when_cached(tmp_path, fg):
    root = make_site(tmp_path)
    ok(run_site(root, "build", "--batch", "--chain", "groq", env=env(fg)))
    result = run_site(root, "regen", "--component", "caption", "--batch", "--chain", "groq", env=env(fg))
    ok(result)
    assert fg.batches_created == 2 and fg.chat_calls() == []
    [second] = [b for b in fg.batches.values() if len(b.requests) == 2]
    assert sorted(cid for _n, cid, _body in second.requests) == sorted(
        [KEY[("caption", "aluminum")], KEY[("caption", "oak")]])
    assert_all_written(root)


# ---- partial results, invalid lines, two passes -------------------------------------------------


def test_expired_batch_keeps_what_came_back_and_sends_the_rest_live(tmp_path, fg):
    fg.batch_plan = BatchPlan(expire_after_fraction=0.5)
    root = make_site(tmp_path)
    result = run_site(root, "build", "--batch", "--chain", "groq", env=env(fg))
    ok(result)
    assert "expired" in result.output and "3 answer(s) came back" in result.output
    assert fg.batches_created == 1
    answered = {r["custom_id"] for r in fg.batch_requests}
    live = live_keys(fg)
    assert len(answered) == 3 and len(live) == 3
    assert not answered & set(live), "a request was both answered by the batch and sent live"
    assert answered | set(live) == {KEY[i] for i in LEVEL1}
    got = assert_all_written(root)
    assert {got[IDENT[k]]["provider"] for k in answered} == {"groq-batch"}
    assert {got[IDENT[k]]["provider"] for k in live} == {"groq"}


def test_invalid_and_failed_lines_go_through_the_live_chain(tmp_path, fg):
    answers: Answers = fg.responder
    short_caption = {"before": "Oak, dirty.", "after": "Oak, clean."}  # fails the words validators
    answers.bad[("caption", "oak")] = [short_caption]
    answers.bad[("bullets", "aluminum")] = [Reply(content=COMMITTED[("bullets", "aluminum")]["output"],
                                                  finish_reason="length")]  # truncated: never accepted
    fg.batch_plan = BatchPlan(invalid_custom_ids={KEY[("tags", "oak")]},  # 400 json_validate_failed line
                              error_custom_ids={KEY[("tags", "aluminum")]})  # error line
    root = make_site(tmp_path)
    result = run_site(root, "build", "--batch", "--chain", "groq", env=env(fg))
    ok(result)
    bad = {KEY[i] for i in [("caption", "oak"), ("bullets", "aluminum"), ("tags", "oak"), ("tags", "aluminum")]}
    live = live_keys(fg)
    assert len(fg.chat_calls()) == 4 and sorted(live) == sorted(bad)
    assert "4 line(s) invalid or failed" in result.output
    # the live call sends exactly the body the batch line carried
    lines = {line["custom_id"]: line["body"] for _b, _n, line in input_lines(fg)}
    for call, key in zip(fg.chat_calls(), live):
        assert {k: v for k, v in call.body.items() if k != "stream"} == lines[key]
    got = assert_all_written(root)
    assert {i for i, rec in got.items() if rec["provider"] == "groq"} == {IDENT[k] for k in bad}


def test_two_pass_sends_failures_to_a_stronger_model_first(tmp_path, fg):
    answers: Answers = fg.responder
    answers.bad[("caption", "oak")] = [{"before": "TBD", "after": "TBD"}]  # fixed by the strong model
    answers.bad[("bullets", "oak")] = [{"bullets": []}, {"bullets": []}]  # fails both batches: live
    root = make_site(tmp_path, batch={"second_pass_model": STRONG})
    result = run_site(root, "build", "--batch", "--chain", "groq", env=env(fg))
    ok(result)
    assert fg.batches_created == 2
    first, second = sorted(fg.batches.values(), key=lambda b: b.created_at)
    lines = input_lines(fg)
    models = {bid: {line["body"]["model"] for b, _n, line in lines if b == bid} for bid in fg.batches}
    second_id = next(bid for bid, ms in models.items() if ms == {STRONG})
    assert sorted(line["custom_id"] for b, _n, line in lines if b == second_id) == sorted(
        [KEY[("caption", "oak")], KEY[("bullets", "oak")]])
    assert sum(len(ms) for ms in models.values()) == 2  # one model per batch
    assert live_keys(fg) == [KEY[("bullets", "oak")]]
    got = assert_all_written(root)
    assert (got[("caption", "oak")]["provider"], got[("caption", "oak")]["model"]) == ("groq-batch", STRONG)
    assert got[("bullets", "oak")]["provider"] == "groq"
    assert "second batch" in result.output


# ---- resumable ----------------------------------------------------------------------------------


def test_sigkill_while_polling_then_the_same_command_resumes(tmp_path, fg):
    fg.batch_plan = BatchPlan(polls_per_status=20)  # ~60 polls before it completes
    root = make_site(tmp_path)
    cmd = [sys.executable, "-m", "generator", "build", "--batch", "--chain", "groq", "--root", str(root)]
    proc_env = {**{k: v for k, v in os.environ.items() if k != "SITE_LLM_CHAIN"},
                "GROQ_BASE_URL": fg.url, "GROQ_API_KEY": SECRET}
    proc = subprocess.Popen(cmd, cwd=REPO, env=proc_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        fg.wait_until(lambda: fg.batches_created == 1 and sum(
            c.method == "GET" and c.path.startswith("/openai/v1/batches/") for c in fg.calls) >= 3,
            timeout=30, what="the build to submit and poll")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    [batch] = fg.batches.values()
    assert batch.status != "completed"
    recorded = state_file(root).read_text(encoding="utf-8")
    assert batch.id in recorded and SECRET not in recorded and fg.url not in recorded
    assert fg.chat_calls() == [] and not any(outputs(root).get(i) for i in LEVEL1)

    result = run_site(root, "build", "--batch", "--chain", "groq", env=env(fg))
    ok(result)
    assert f"resuming batch {batch.id}" in result.output
    assert fg.batches_created == 1 and fg.chat_calls() == []
    assert_all_written(root)
    assert not state_file(root).exists()


def test_a_batch_created_but_not_recorded_is_found_by_its_tag(tmp_path, fg):
    """A kill between `batches.create` returning and the id being recorded: simulated by taking
    the id out of the state file. The next run finds the batch by its metadata tag."""
    fg.batch_plan = BatchPlan(polls_per_status=2)
    root = make_site(tmp_path)
    ok(run_site(root, "build", "--batch", "--no-wait", "--chain", "groq", env=env(fg)))
    state = json.loads(state_file(root).read_text(encoding="utf-8"))
    state["batches"][0]["batch_id"] = None
    state_file(root).write_text(json.dumps(state), encoding="utf-8")
    ok(run_site(root, "build", "--batch", "--chain", "groq", env=env(fg)))
    assert fg.batches_created == 1 and fg.chat_calls() == []
    assert_all_written(root)


def test_no_wait_then_plain_build_holds_back_then_batch_ingests(tmp_path, fg):
    root = make_site(tmp_path)
    result = run_site(root, "build", "--batch", "--no-wait", "--chain", "groq", env=env(fg))
    ok(result)
    assert "still running" in result.output
    assert fg.batches_created == 1 and fg.chat_calls() == []
    assert not any(outputs(root).get(i) for i in LEVEL1)
    recorded = state_file(root).read_text(encoding="utf-8")
    assert SECRET not in recorded and all(KEY[i] in recorded for i in LEVEL1)
    [batch_id] = fg.batches

    status = run_site(root, "batch", "status", env=env(fg))
    ok(status)
    assert batch_id in status.output and "6 request(s)" in status.output and "status " in status.output

    # a plain build never sends live what a running batch holds
    plain = run_site(root, "build", "--chain", "groq", env=env(fg))
    ok(plain)
    assert fg.chat_calls() == [] and "in a running batch" in plain.output

    result = run_site(root, "build", "--batch", "--chain", "groq", env=env(fg))
    ok(result)
    assert fg.batches_created == 1 and fg.chat_calls() == []
    assert_all_written(root)
    assert run_site(root, "batch", "status", env=env(fg)).output.strip() == "no batch recorded"


def test_batch_cancel_then_batch_build_sends_what_never_ran_live(tmp_path, fg):
    fg.batch_plan = BatchPlan(polls_per_status=10)
    root = make_site(tmp_path)
    ok(run_site(root, "build", "--batch", "--no-wait", "--chain", "groq", env=env(fg)))
    [batch_id] = fg.batches
    cancelled = run_site(root, "batch", "cancel", env=env(fg))
    ok(cancelled)
    assert f"batch {batch_id}: cancelling" in cancelled.output
    assert fg.batches[batch_id].status == "cancelling"
    result = run_site(root, "build", "--batch", "--chain", "groq", env=env(fg))
    ok(result)
    assert "cancelled" in result.output
    assert fg.batches_created == 1 and len(fg.chat_calls()) == 6
    assert_all_written(root)
    assert not state_file(root).exists()
    assert run_site(root, "batch", "cancel", env=env(fg)).output.strip() == "no batch recorded"


# ---- errors and limits --------------------------------------------------------------------------


def test_batch_rejected_at_validation_names_the_lines(tmp_path, fg):
    fg.batch_plan = BatchPlan(validation_errors=[
        {"line": 2, "code": "invalid_request", "param": "body.model", "message": "model not available for batch"}])
    root = make_site(tmp_path)
    result = run_site(root, "build", "--batch", "--chain", "groq", env=env(fg))
    assert result.exit_code == 2, result.output
    assert SECRET not in result.output
    [(_bid, _n, line2)] = [(b, n, line) for b, n, line in input_lines(fg) if n == 2]
    component, slug = IDENT[line2["custom_id"]]
    assert "rejected" in result.output and "at validation" in result.output
    assert re.search(rf"\.cache/batch/rejected-\S+\.jsonl:2 \[body\.model\]: invalid_request: model not available "
                     rf"for batch \({component}:{slug}\)", result.output), result.output
    assert fg.chat_calls() == [] and not state_file(root).exists()
    kept = list((root / ".cache" / "batch").glob("rejected-*.jsonl"))
    assert len(kept) == 1 and json.loads(kept[0].read_text().splitlines()[1])["custom_id"] == line2["custom_id"]


def test_more_lines_than_max_lines_are_split_and_all_recorded(tmp_path, fg):
    root = make_site(tmp_path, batch={"max_lines": 4})
    result = run_site(root, "build", "--batch", "--no-wait", "--chain", "groq", env=env(fg))
    ok(result)
    assert fg.batches_created == 2 and "split into 2 batches" in result.output
    recorded = json.loads(state_file(root).read_text(encoding="utf-8"))
    assert sorted(b["batch_id"] for b in recorded["batches"]) == sorted(fg.batches)
    assert sorted(len(b["lines"]) for b in recorded["batches"]) == [2, 4]
    ok(run_site(root, "build", "--batch", "--chain", "groq", env=env(fg)))
    assert fg.batches_created == 2 and fg.chat_calls() == []
    assert_all_written(root)


def test_input_over_the_byte_limit_is_split(tmp_path, fg):
    root = make_site(tmp_path, batch={"max_bytes": 12_000})
    ok(run_site(root, "build", "--batch", "--chain", "groq", env=env(fg)))
    sizes = [len(fg.files[b.input_file_id].content) for b in fg.batches.values()]
    assert len(sizes) >= 2 and max(sizes) <= 12_000
    assert fg.chat_calls() == []
    assert_all_written(root)


def test_no_api_key_is_a_clear_error(tmp_path, fg):
    root = make_site(tmp_path)
    result = run_site(root, "build", "--batch", "--chain", "groq", env={**env(fg), "GROQ_API_KEY": None})
    assert result.exit_code == 1 and "GROQ_API_KEY is not set" in result.output
    assert fg.batches_created == 0


def test_batch_settings():
    s = LLMSettings.from_config({"batch": {"model": "m", "second_pass_model": STRONG, "completion_window": "48h",
                                           "discount": 0.25, "poll_interval": 2, "max_poll_interval": 30,
                                           "max_lines": 1000, "max_bytes": 5_000_000}}, {}).batch
    assert (s.model, s.second_pass_model, s.completion_window, s.discount, s.poll_interval, s.max_poll_interval,
            s.max_lines, s.max_bytes) == ("m", STRONG, "48h", 0.25, 2.0, 30.0, 1000, 5_000_000)
    d = LLMSettings.from_config({}, {}).batch
    assert (d.model, d.second_pass_model, d.completion_window, d.discount, d.max_bytes) == (
        None, None, "24h", 0.5, 100_000_000)
    for bad in ({"discount": 1.5}, {"completion_window": "soon"}, {"max_lines": 0}, {"api_key": "x"}):
        with pytest.raises(InputError):
            LLMSettings.from_config({"batch": bad}, {})
    assert "batch" in LLM_SETTINGS_SCHEMA["properties"]


def test_the_example_site_settings_still_load():
    config = yaml.safe_load((REPO / "site.yaml").read_text(encoding="utf-8"))
    assert LLMSettings.from_config(config["llm"], {}).batch.completion_window == "24h"
