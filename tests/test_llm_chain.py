"""The provider chain through its public entry, `produce(...)`, against the loopback fakes and the
official clients: cache, fallback triggers, repair, truncation, concurrency, rate limits, secrets,
template provenance."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `tests.fakes` is imported as a package from the repo root
    sys.path.insert(0, str(ROOT))

from generator.llm import (Answer, AnswerCache, LLMRequest, LLMSession, LLMSettings, Progress,  # noqa: E402
                           check_health, produce, produce_sync)
from tests.fakes import FakeGroq, FakeOllama, Reply  # noqa: E402

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {"text": {"type": "string"}},
}
MATERIAL = {
    "name": "Aluminum",
    "category": "metal",
    "properties": {"density": {"value": 2.70, "unit": "g/cm³"}},
    "laser": {"fluence": {"min": 0.8, "max": 2.5, "unit": "J/cm²"}},
}
GOOD = {"text": "Aluminum cleans well at 0.8-2.5 J/cm²."}
SECRET = "gsk_TOPSECRET_do_not_leak_0123456789"


def req(key: str = "v1:aa", *, slug: str = "aluminum", component: str = "caption", validators=(),
        models=None, offline=None, fresh: bool = False, params=None) -> LLMRequest:
    return LLMRequest(
        key=key, component=component, slug=slug,
        messages=({"role": "system", "content": "You write captions."},
                  {"role": "user", "content": f"Caption for {slug}."}),
        schema=SCHEMA,
        params=params if params is not None else {"temperature": 0.4, "max_tokens": 200, "seed": 7},
        models=models or {}, validators=tuple(validators), material=MATERIAL, offline=offline, fresh=fresh,
    )


def settings(chain, *, fo=None, fg=None, env=None, **providers) -> LLMSettings:
    """Settings pointing at the fakes; `ollama={...}` etc. override provider settings."""
    e = dict(env or {})
    if fo is not None:
        e.setdefault("OLLAMA_HOST", fo.url)
    if fg is not None:
        e.setdefault("GROQ_BASE_URL", fg.url)
        e.setdefault("GROQ_API_KEY", fg.api_key)
    conf = {
        "ollama": {"timeout": 5, "connect_timeout": 1, "concurrency": 2},
        "groq": {"timeout": 5, "connect_timeout": 1, "concurrency": 4, "rpm": None, "tpm": None},
        "openai": {"timeout": 5, "connect_timeout": 1},
    }
    for name, extra in providers.items():
        conf.setdefault(name, {}).update(extra)
    return LLMSettings.from_config({"chain": list(chain), "providers": conf}, e)


class Run:
    """produce() with a recording on_answer."""

    def __init__(self, tmp_path: Path):
        self.cache = AnswerCache(tmp_path / ".cache" / "llm")
        self.answers: dict[str, Answer] = {}
        self.order: list[str] = []

    def __call__(self, requests, s: LLMSettings, **kw):
        def on_answer(r: LLMRequest, a: Answer) -> None:
            # the answer is in the cache before the caller hears of it (SIGKILL-safe)
            assert self.cache.get(r.key) is not None
            self.answers[r.key] = a
            self.order.append(r.key)

        return produce_sync(list(requests), s, self.cache, on_answer, **kw)


@pytest.fixture
def run(tmp_path):
    r = Run(tmp_path)
    yield r
    r.cache.close()


@pytest.fixture
def fo():
    with FakeOllama() as f:
        yield f


@pytest.fixture
def fg():
    with FakeGroq(api_key=SECRET) as f:
        yield f


def closed_port_url() -> str:
    f = FakeOllama().start()
    url = f.url
    f.stop()
    return url


def user_texts(call) -> list[str]:
    return [m["content"] for m in call.body["messages"] if m["role"] == "user"]


# ---- the happy path and the cache ------------------------------------------------------------


def test_ollama_answer_request_shape_and_provenance(run, fo):
    fo.push(Reply(content=GOOD, prompt_tokens=11, completion_tokens=22))
    report = run([req()], settings(["ollama", "template"], fo=fo))
    a = run.answers["v1:aa"]
    assert (a.output, a.provider, a.model, a.from_cache) == (GOOD, "ollama", "llama3.2", False)
    assert a.usage == {"prompt_tokens": 11, "completion_tokens": 22}
    [chat] = fo.chat_calls()
    assert chat.body["format"] == SCHEMA and chat.body["stream"] is False
    assert chat.body["options"] == {"temperature": 0.4, "num_predict": 200, "seed": 7}
    assert [c.path for c in fo.calls].count("/api/tags") == 1
    assert report.produced == 1 and report.cache_hits == 0 and not report.failed
    cached = run.cache.get("v1:aa")
    assert cached.output == GOOD and cached.provider == "ollama" and cached.from_cache


def test_warm_cache_makes_zero_calls(run, fo):
    s = settings(["ollama"], fo=fo)
    fo.responder = lambda body: Reply(content=GOOD)
    run([req("v1:1"), req("v1:2", slug="b")], s)
    fo.reset()
    report = run([req("v1:1"), req("v1:2", slug="b")], s)
    assert fo.calls == []  # not even the health check
    assert report.cache_hits == 2 and report.produced == 0 and report.calls == 0
    assert all(a.from_cache for a in run.answers.values())


def test_fresh_skips_the_cache_read_but_stores_the_new_answer(run, fo):
    s = settings(["ollama"], fo=fo)
    fo.push(Reply(content={"text": "first"}), Reply(content={"text": "second"}))
    run([req()], s)
    report = run([req(fresh=True)], s)
    assert len(fo.chat_calls()) == 2 and report.cache_hits == 0
    assert run.answers["v1:aa"].output == {"text": "second"}
    assert run.cache.get("v1:aa").output == {"text": "second"}


def test_duplicate_keys_in_one_run_make_one_call(run, fo):
    fo.responder = lambda body: Reply(content=GOOD, delay=0.05)
    seen = []
    cache = run.cache
    report = produce_sync([req("v1:same", slug="a"), req("v1:same", slug="b")], settings(["ollama"], fo=fo),
                          cache, lambda r, a: seen.append((r.slug, a.from_cache)))
    assert len(fo.chat_calls()) == 1
    assert sorted(seen) == [("a", False), ("b", True)] or sorted(seen) == [("a", True), ("b", False)]
    assert report.produced == 1 and report.cache_hits == 1


# ---- fallback triggers -----------------------------------------------------------------------


def test_connection_refused_moves_on_and_skips_the_provider(run, fg):
    fg.responder = lambda body: Reply(content=GOOD)
    s = settings(["ollama", "groq"], fg=fg, env={"OLLAMA_HOST": closed_port_url()})
    report = run([req("v1:1"), req("v1:2", slug="b")], s)
    assert {a.provider for a in run.answers.values()} == {"groq"}
    assert any(n.startswith("ollama: skipped") and "not reachable" in n for n in report.notes)
    assert report.providers["ollama"].calls == 0  # health said no: no chat attempt at all


def test_connection_refused_at_call_time(run, fo, fg):
    """Health passed, then the server went away: move on, and skip it for the rest of the build."""
    fg.responder = lambda body: Reply(content=GOOD)
    s = settings(["ollama", "groq"], fo=fo, fg=fg, ollama={"concurrency": 1})
    session = LLMSession(s)
    fo.push(Reply(content=GOOD))
    run([req("v1:0")], s, session=session)
    fo.stop()
    report = run([req("v1:1"), req("v1:2", slug="b")], s, session=session)
    assert run.answers["v1:1"].provider == "groq" and run.answers["v1:2"].provider == "groq"
    assert report.providers["ollama"].calls == 1  # the second request did not retry a dead server
    assert any("ollama" in n and "connection refused" in n for n in report.notes)


def test_timeout_moves_on(run, fo, fg):
    fo.push(Reply(content=GOOD, delay=3))
    fg.push(Reply(content=GOOD))
    s = settings(["ollama", "groq"], fo=fo, fg=fg, ollama={"timeout": 0.3, "connect_timeout": 0.3})
    t0 = time.monotonic()
    report = run([req()], s)
    assert time.monotonic() - t0 < 2.5
    assert run.answers["v1:aa"].provider == "groq"
    assert report.providers["ollama"].fallbacks == 1


def test_groq_timeout_moves_on(run, fg):
    fg.push(Reply(content=GOOD, delay=3))
    s = settings(["groq", "template"], fg=fg, groq={"timeout": 0.3, "connect_timeout": 0.3})
    t0 = time.monotonic()
    report = run([req(offline=lambda: json.dumps(GOOD))], s)
    assert time.monotonic() - t0 < 2.5 and len(fg.chat_calls()) == 1  # no SDK retry
    assert run.answers["v1:aa"].provider == "template"
    assert report.providers["groq"].fallbacks == 1


def test_model_missing_at_health_check(run, fg):
    with FakeOllama(models=["mistral:latest"]) as fo:
        fg.push(Reply(content=GOOD))
        report = run([req()], settings(["ollama", "groq"], fo=fo, fg=fg))
        assert fo.chat_calls() == []
    assert run.answers["v1:aa"].provider == "groq"
    assert any("llama3.2" in n and "not pulled" in n for n in report.notes)


def test_model_missing_404_at_chat(run, fo, fg):
    fg.push(Reply(content=GOOD))
    report = run([req(models={"ollama": "qwen2.5:7b"})], settings(["ollama", "groq"], fo=fo, fg=fg))
    assert run.answers["v1:aa"].provider == "groq"
    assert len(fo.chat_calls()) == 1 and fo.chat_calls()[0].body["model"] == "qwen2.5:7b"
    assert report.providers["ollama"].fallbacks == 1


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_moves_on(run, fo, fg, status):
    fo.push(Reply(status=status))
    fg.push(Reply(status=status))
    report = run([req(offline=lambda: json.dumps(GOOD))], settings(["ollama", "groq", "template"], fo=fo, fg=fg))
    assert run.answers["v1:aa"].provider == "template"
    assert len(fo.chat_calls()) == 1 and len(fg.chat_calls()) == 1  # SDK retries are off
    assert report.providers["groq"].fallbacks == 1 and report.providers["ollama"].fallbacks == 1


def test_groq_429_long_retry_after_moves_on_at_once(run, fg):
    fg.push(Reply(status=429, headers={"retry-after": "47"}))
    t0 = time.monotonic()
    report = run([req(offline=lambda: json.dumps(GOOD))], settings(["groq", "template"], fg=fg))
    assert time.monotonic() - t0 < 2
    assert run.answers["v1:aa"].provider == "template"
    assert len(fg.chat_calls()) == 1
    assert report.providers["groq"].rate_limited == 1


def test_groq_429_long_wait_diverts_the_other_requests_too(run, fg):
    """After a long 429 the provider is cooling down: the next requests do not hammer it."""
    fg.push(Reply(status=429, headers={"retry-after": "30"}))
    fg.responder = lambda body: Reply(content=GOOD)
    s = settings(["groq", "template"], fg=fg, groq={"concurrency": 1})
    run([req(f"v1:{i}", slug=f"m{i}", offline=lambda: json.dumps(GOOD)) for i in range(4)], s)
    assert len(fg.chat_calls()) == 1
    assert {a.provider for a in run.answers.values()} == {"template"}


def test_groq_429_short_retry_after_retries_the_same_provider(run, fg):
    fg.push(Reply(status=429, headers={"retry-after": "0.2"}), Reply(content=GOOD))
    t0 = time.monotonic()
    report = run([req()], settings(["groq", "template"], fg=fg))
    assert time.monotonic() - t0 >= 0.2
    assert run.answers["v1:aa"].provider == "groq"
    calls = fg.chat_calls()
    assert len(calls) == 2 and calls[1].at - calls[0].at >= 0.19
    assert report.providers["groq"].rate_limited == 1 and report.providers["groq"].retries == 1


def test_groq_429_without_retry_after_uses_the_reset_headers(run, fg):
    fg.push(Reply(status=429, headers={"x-ratelimit-reset-tokens": "150ms", "x-ratelimit-reset-requests": "100ms"}),
            Reply(content=GOOD))
    run([req()], settings(["groq"], fg=fg))
    assert run.answers["v1:aa"].provider == "groq" and len(fg.chat_calls()) == 2


def test_groq_413_moves_on(run, fg):
    fg.push(Reply(status=413), Reply(status=413))
    report = run([req("v1:1", offline=lambda: json.dumps(GOOD))], settings(["groq", "template"], fg=fg))
    assert run.answers["v1:1"].provider == "template"
    assert len(fg.chat_calls()) == 1 and report.providers["groq"].fallbacks == 1
    report = run([req("v1:2")], settings(["groq"], fg=fg))
    assert "groq: request too large (413)" in report.failed[0][1]


def test_groq_401_moves_on_with_a_clear_message_and_no_key(run, tmp_path):
    with FakeGroq(api_key="the-right-key") as fg:
        s = settings(["groq"], fg=fg, env={"GROQ_API_KEY": SECRET})
        report = run([req()], s)
    [(r, reason)] = report.failed
    assert "authentication failed" in reason and "GROQ_API_KEY" in reason
    assert SECRET not in reason and SECRET not in repr(report) and SECRET not in json.dumps(report.as_dict())


def test_groq_without_key_is_skipped(run):
    s = settings(["groq", "template"], env={"GROQ_BASE_URL": closed_port_url()})
    report = run([req(offline=lambda: json.dumps(GOOD))], s)
    assert run.answers["v1:aa"].provider == "template"
    assert any("GROQ_API_KEY is not set" in n for n in report.notes)


# ---- validation, repair, escalation, truncation ------------------------------------------------


def test_invalid_json_is_repaired_with_the_errors_fed_back(run, fo):
    fo.push(Reply(content="Sure! here it is: {text: nope"), Reply(content=GOOD))
    report = run([req()], settings(["ollama"], fo=fo))
    assert run.answers["v1:aa"].output == GOOD
    first, second = fo.chat_calls()
    assert len(first.body["messages"]) == 2
    assert second.body["messages"][2] == {"role": "assistant", "content": "Sure! here it is: {text: nope"}
    assert "not valid JSON" in user_texts(second)[-1]
    assert report.providers["ollama"].retries == 1 and report.providers["ollama"].failures == 1


def test_validator_errors_are_fed_back(run, fo):
    v = [{"type": "words", "field": "text", "min": 3}, {"type": "mentions_name", "field": "text"}]
    fo.push(Reply(content={"text": "Too short"}), Reply(content=GOOD))
    run([req(validators=v)], settings(["ollama"], fo=fo))
    feedback = user_texts(fo.chat_calls()[1])[-1]
    assert "text: has 2 words, expected at least 3" in feedback
    assert "must mention the material name 'Aluminum'" in feedback


def test_still_invalid_after_repairs_escalates(run, fo, fg):
    fo.responder = lambda body: Reply(content={"wrong": 1})
    fg.push(Reply(content=GOOD))
    s = LLMSettings.from_config({"chain": ["ollama", "groq"], "repair_retries": 2,
                                 "providers": {"groq": {"rpm": None, "tpm": None}}},
                                {"OLLAMA_HOST": fo.url, "GROQ_BASE_URL": fg.url, "GROQ_API_KEY": SECRET})
    report = run([req()], s)
    assert len(fo.chat_calls()) == 3  # 1 + repair_retries
    assert run.answers["v1:aa"].provider == "groq"
    # the escalated request starts afresh: the original messages, not ollama's repair dialogue
    assert len(fg.chat_calls()[0].body["messages"]) == 2
    assert report.providers["ollama"].fallbacks == 1


def test_groq_json_validate_failed_takes_the_repair_path(run, fg):
    fg.push(Reply(status=400, error_code="json_validate_failed", failed_generation='{"text": "unterminated'),
            Reply(content=GOOD))
    run([req()], settings(["groq"], fg=fg))
    assert run.answers["v1:aa"].provider == "groq"
    second = fg.chat_calls()[1].body["messages"]
    assert {"role": "assistant", "content": '{"text": "unterminated'} in second
    assert "json_validate_failed" in second[-1]["content"]


def test_groq_request_shape(run, fg):
    fg.push(Reply(content=GOOD))
    run([req(models={"groq": "llama-3.3-70b-versatile"})], settings(["groq"], fg=fg))
    [call] = fg.chat_calls()
    body = call.body
    assert body["model"] == "llama-3.3-70b-versatile"
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "caption", "schema": SCHEMA, "strict": False}}
    assert body["max_completion_tokens"] == 200 and body["temperature"] == 0.4 and body["seed"] == 7
    assert call.headers.get("x-stainless-retry-count") == "0"
    assert run.answers["v1:aa"].model == "llama-3.3-70b-versatile"


def test_groq_json_object_mode_states_the_schema(run, fg):
    fg.push(Reply(content=GOOD))
    run([req()], settings(["groq"], fg=fg, groq={"response_format": "json_object"}))
    body = fg.chat_calls()[0].body
    assert body["response_format"] == {"type": "json_object"}
    # in the user message (a chat format may drop the system one), and said once
    assert '"required": ["text"]' in body["messages"][-1]["content"]
    assert '"required": ["text"]' not in body["messages"][0]["content"]


def test_truncated_answer_is_never_accepted(run, fo):
    # Valid JSON, but the model hit the token limit: not accepted, not cached.
    fo.responder = lambda body: Reply(content=GOOD, finish_reason="length")
    report = run([req()], settings(["ollama"], fo=fo))
    assert run.answers == {} and run.cache.get("v1:aa") is None
    [(r, reason)] = report.failed
    assert "cut off" in reason and len(fo.chat_calls()) == 3
    assert "finish_reason=length" in user_texts(fo.chat_calls()[1])[-1]


def test_truncated_invalid_json_from_groq_escalates(run, fg):
    fg.responder = lambda body: Reply(content=GOOD, truncate=True, finish_reason="length")
    run([req(offline=lambda: json.dumps(GOOD))], settings(["groq", "template"], fg=fg))
    assert run.answers["v1:aa"].provider == "template"


def test_a_request_nothing_can_produce_fails_alone(run, fo):
    fo.responder = lambda body: (Reply(content={"text": "TBD"}) if "broken" in json.dumps(body)
                                 else Reply(content=GOOD))
    v = [{"type": "no_placeholders"}]
    requests = [req("v1:ok1", slug="ok1", validators=v), req("v1:bad", slug="broken", validators=v),
                req("v1:ok2", slug="ok2", validators=v)]
    report = run(requests, settings(["ollama", "template"], fo=fo))
    assert set(run.answers) == {"v1:ok1", "v1:ok2"}
    [(r, reason)] = report.failed
    assert r.slug == "broken"
    assert "ollama: answer still invalid after 3 attempt(s)" in reason and "placeholder" in reason
    assert "template: component 'caption' has no offline template" in reason
    assert run.cache.get("v1:bad") is None


# ---- template tier -----------------------------------------------------------------------------


def test_template_tier_provenance(run):
    report = run([req(offline=lambda: json.dumps(GOOD))], settings(["template"]))
    a = run.answers["v1:aa"]
    assert (a.provider, a.model, a.usage) == ("template", "template", {"prompt_tokens": 0, "completion_tokens": 0})
    assert run.cache.get("v1:aa").provider == "template"
    assert report.providers["template"].answers == 1


def test_template_output_is_validated_and_not_repaired(run):
    calls = []

    def offline():
        calls.append(1)
        return json.dumps({"text": "Lorem ipsum"})

    report = run([req(offline=offline, validators=[{"type": "no_placeholders"}])], settings(["template"]))
    assert len(calls) == 1 and run.answers == {}
    assert "placeholder" in report.failed[0][1]


def test_template_may_render_yaml(run):
    run([req(offline=lambda: "text: Aluminum, cleaned.\n")], settings(["template"]))
    assert run.answers["v1:aa"].output == {"text": "Aluminum, cleaned."}


# ---- concurrency and rate limits ---------------------------------------------------------------


def test_concurrency_is_bounded_per_provider(run, fo, fg):
    fo.responder = lambda body: Reply(content=GOOD, delay=0.08)
    run([req(f"v1:{i}", slug=f"m{i}") for i in range(8)], settings(["ollama"], fo=fo, ollama={"concurrency": 2}))
    assert fo.max_in_flight == 2
    fg.responder = lambda body: Reply(content=GOOD, delay=0.08)
    run([req(f"v1:g{i}", slug=f"g{i}") for i in range(12)], settings(["groq"], fg=fg, groq={"concurrency": 3}))
    assert fg.max_in_flight == 3


def test_requests_per_window_respected_and_budget_used(run, fg):
    fg.responder = lambda body: Reply(content=GOOD)
    rpm, period, n = 4, 0.4, 12
    s = settings(["groq"], fg=fg, groq={"concurrency": 8, "rpm": rpm, "period_seconds": period})
    t0 = time.monotonic()
    report = run([req(f"v1:{i}", slug=f"m{i}") for i in range(n)], s)
    elapsed = time.monotonic() - t0
    times = sorted(c.at for c in fg.chat_calls())
    assert len(times) == n and report.produced == n
    for i, t in enumerate(times):  # never more than rpm calls in any window of `period` seconds
        assert sum(1 for u in times[i:] if u - t < period) <= rpm
    # ... and the budget is used: n calls need (n/rpm - 1) full windows, not much more
    assert elapsed >= (n / rpm - 1) * period
    assert elapsed < (n / rpm - 1) * (period + 0.1) + 0.6


def test_rate_budget_is_shared_across_produce_calls_of_a_session(run, fg):
    fg.responder = lambda body: Reply(content=GOOD)
    s = settings(["groq"], fg=fg, groq={"rpm": 3, "period_seconds": 0.5})
    session = LLMSession(s)
    run([req(f"v1:a{i}", slug=f"a{i}") for i in range(3)], s, session=session)
    run([req(f"v1:b{i}", slug=f"b{i}") for i in range(3)], s, session=session)
    times = sorted(c.at for c in fg.chat_calls())
    assert times[3] - times[0] >= 0.5  # the second level waited for the first level's window


def test_tokens_per_window_respected(run, fg):
    fg.responder = lambda body: Reply(content=GOOD)
    # each request is estimated at ~ chars/4 + max_tokens = ~10 + 100 tokens: 2 fit in 250
    s = settings(["groq"], fg=fg, groq={"tpm": 250, "period_seconds": 0.3})
    run([req(f"v1:{i}", slug=f"m{i}", params={"max_tokens": 100}) for i in range(6)], s)
    times = sorted(c.at for c in fg.chat_calls())
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u - t < 0.3) <= 2


# ---- health, session, secrets, laziness, progress --------------------------------------------------


def test_health_checked_once_per_build(run, fo):
    fo.responder = lambda body: Reply(content=GOOD)
    s = settings(["ollama"], fo=fo)
    session = LLMSession(s)
    run([req("v1:1")], s, session=session)
    run([req("v1:2", slug="b")], s, session=session)
    assert [c.path for c in fo.calls].count("/api/tags") == 1


def test_check_health(fo, fg):
    s = settings(["ollama", "groq", "template"], fo=fo, fg=fg)
    result = check_health(s)
    assert [(n, ok) for n, ok, _ in result] == [("ollama", True), ("groq", True), ("template", True)]
    assert all(SECRET not in d for _, _, d in result)
    s = settings(["ollama", "groq"], env={"OLLAMA_HOST": closed_port_url()})
    [(_, ok1, d1), (_, ok2, d2)] = check_health(s)
    assert not ok1 and "not reachable" in d1 and not ok2 and "GROQ_API_KEY is not set" in d2


def test_the_api_key_never_reaches_cache_report_or_messages(run, fg, tmp_path):
    fg.push(Reply(status=500, error=f"upstream echoed {SECRET}"), Reply(status=429, headers={"retry-after": "99"}),
            Reply(content={"text": "TBD"}), Reply(content=GOOD))
    s = LLMSettings.from_config(
        {"chain": ["groq", "template"], "repair_retries": 1, "providers": {"groq": {"rpm": None, "tpm": None}}},
        {"GROQ_BASE_URL": fg.url, "GROQ_API_KEY": SECRET})
    requests = [req(f"v1:{i}", slug=f"m{i}", validators=[{"type": "no_placeholders"}]) for i in range(3)]
    report = run(requests, s)
    assert all(c.headers["authorization"] == f"Bearer {SECRET}" for c in fg.chat_calls())  # it was used...
    run.cache.close()
    for path in (tmp_path / ".cache").rglob("*"):  # ...and is stored nowhere
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    blob = repr(report) + json.dumps(report.as_dict()) + repr(report.summary_rows()) + repr(s) + str(s)
    assert SECRET not in blob
    assert report.failed and all(SECRET not in why for _, why in report.failed)


def test_no_sdk_imported_when_everything_is_cached(tmp_path):
    code = f"""
import sys
from pathlib import Path
from generator.llm import AnswerCache, Answer, LLMRequest, LLMSettings, produce_sync
cache = AnswerCache(Path({str(tmp_path)!r}))
cache.put("v1:k", Answer(output={{"text": "x"}}, provider="groq", model="m", usage={{}}))
r = LLMRequest(key="v1:k", component="c", slug="s", messages=(), schema={{}}, params={{}}, models={{}},
               validators=(), material={{}})
got = []
produce_sync([r], LLMSettings.from_config({{}}, {{}}), cache, lambda q, a: got.append(a))
assert got and got[0].from_cache
print("ollama" in sys.modules, "groq" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_progress_is_quiet_without_a_terminal(run, fo):
    import io

    from rich.console import Console

    buf = io.StringIO()
    fo.responder = lambda body: Reply(content=GOOD)
    progress = Progress(console=Console(file=buf, force_terminal=False))
    run([req()], settings(["ollama"], fo=fo), progress=progress)
    assert buf.getvalue() == ""
    forced = io.StringIO()
    progress = Progress(console=Console(file=forced, force_terminal=True, width=160))
    run([req("v1:2", fresh=True)], settings(["ollama"], fo=fo), progress=progress)
    assert "1/1" in forced.getvalue()


def test_summary_rows_and_cost(run, fg):
    fg.push(Reply(content=GOOD, prompt_tokens=1_000_000, completion_tokens=500_000))
    s = LLMSettings.from_config(
        {"chain": ["groq"], "providers": {"groq": {"rpm": None, "tpm": None}},
         "prices": {"groq:llama-3.1-8b-instant": {"input": 0.05, "output": 0.08}}},
        {"GROQ_BASE_URL": fg.url, "GROQ_API_KEY": SECRET})
    report = run([req()], s)
    assert report.cost == pytest.approx(0.05 + 0.04)
    rows = {r[0]: r for r in report.summary_rows()}
    assert rows["groq"][1] == "1" and rows["groq"][-1] == "$0.0900"
    assert set(rows) == {"groq", "cache", "total"}
    assert len(report.summary_columns()) == len(rows["total"])


def test_openai_compatible_provider(run, fg):
    """Any OpenAI-compatible server: the Groq fake serves the same protocol under /openai/v1."""
    s = LLMSettings.from_config(
        {"chain": ["openai", "template"], "providers": {"openai": {"model": "local-model"}}},
        {"OPENAI_BASE_URL": fg.url + "/openai/v1", "OPENAI_API_KEY": SECRET})
    fg.push(Reply(status=503))
    run([req("v1:1", offline=lambda: json.dumps(GOOD))], s)
    assert run.answers["v1:1"].provider == "template"
    fg.push(Reply(status=429, headers={"retry-after": "0.05"}), Reply(content=GOOD, completion_tokens=9))
    report = run([req("v1:2")], s)
    a = run.answers["v1:2"]
    assert (a.provider, a.model, a.usage["completion_tokens"]) == ("openai", "local-model", 9)
    assert report.providers["openai"].rate_limited == 1
    body = fg.chat_calls()[-1].body
    assert body["max_tokens"] == 200 and body["response_format"]["type"] == "json_schema"
    assert fg.chat_calls()[-1].headers["authorization"] == f"Bearer {SECRET}"


def test_on_answer_errors_propagate_and_answers_stay_cached(run, fo):
    fo.responder = lambda body: Reply(content=GOOD)

    def boom(r, a):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        produce_sync([req()], settings(["ollama"], fo=fo), run.cache, boom)
    assert run.cache.get("v1:aa") is not None  # the paid answer is kept


def test_async_entry(run, fo):
    fo.responder = lambda body: Reply(content=GOOD)
    got = []

    async def main():
        return await produce([req()], settings(["ollama"], fo=fo), run.cache, lambda r, a: got.append(a))

    report = asyncio.run(main())
    assert report.produced == 1 and got[0].output == GOOD
