"""Structured output that fits each server, repair that can succeed, health that means "can
answer": produce() against the loopback fakes (an OpenAI-compatible server in the flavours of
llama-cpp-python and LM Studio, Ollama old and new), asserting on the requests the fakes got."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from generator.llm import LLMSession, LLMSettings, check_health
from tests.fakes import LLAMA_CPP_PYTHON, LM_STUDIO, FakeOllama, FakeOpenAI, Reply
from tests.test_llm_chain import GOOD, SCHEMA, Run, req, settings, user_texts

CAPTION_RULES = [{"type": "words", "field": "text", "min": 3}, {"type": "mentions_name", "field": "text"}]


@pytest.fixture
def run(tmp_path):
    r = Run(tmp_path)
    yield r
    r.cache.close()


def openai_settings(fake: FakeOpenAI, chain=("openai", "template"), **openai) -> LLMSettings:
    return settings(list(chain), env={"OPENAI_BASE_URL": fake.base_url},
                    openai={"model": "local-model", "concurrency": 1, **openai})


def formats(fake) -> list:
    return [c.body.get("response_format") for c in fake.chat_calls()]


def offline():
    return json.dumps(GOOD)


# ---- each mode, and the negotiation ------------------------------------------------------------


def test_json_schema_first_and_the_rules_in_the_user_message(run):
    with FakeOpenAI() as fake:
        fake.push(Reply(content=GOOD))
        report = run([req(validators=CAPTION_RULES)], openai_settings(fake))
        [call] = fake.chat_calls()
    assert call.body["response_format"] == {"type": "json_schema",
                                            "json_schema": {"name": "caption", "schema": SCHEMA, "strict": False}}
    user = user_texts(call)[-1]
    assert user.startswith("Caption for aluminum.")
    assert json.dumps(SCHEMA, sort_keys=True) in user
    assert "`text`: at least 3 words" in user and 'must mention the material name "Aluminum"' in user
    assert "Do not invent numbers, prices" in user
    assert run.answers["v1:aa"].provider == "openai"
    assert report.modes == {"openai": "json_schema"}
    assert "openai: structured output json_schema for this build" in report.notes


def test_llama_cpp_python_refusal_steps_down_once_for_the_build(run):
    """llama-cpp-python's server: json_schema -> HTTP 500 "Input should be 'text' or 'json_object'";
    the same request goes again as json_object with the schema (its grammar mode), and so does
    every later request, without asking json_schema again."""
    with FakeOpenAI(response_formats=LLAMA_CPP_PYTHON) as fake:
        fake.responder = lambda body: Reply(content=GOOD)
        s = openai_settings(fake)
        session = LLMSession(s)
        report = run([req(f"v1:{i}", slug=f"m{i}", offline=offline) for i in range(3)], s, session=session)
        later = run([req("v1:later", slug="later", offline=offline)], s, session=session)
        sent = formats(fake)
    assert {a.provider for a in run.answers.values()} == {"openai"}
    assert [f["type"] for f in sent] == ["json_schema"] + ["json_object"] * 4
    assert all(f["schema"] == SCHEMA for f in sent[1:])
    assert len(fake.refused) == 1
    assert report.modes == {"openai": "json_object_schema"} and later.modes == {"openai": "json_object_schema"}
    [note] = [n for n in report.notes if "refused" in n and "trying" in n]
    assert "json_schema refused (HTTP 500:" in note and "Input should be 'text' or 'json_object'" in note
    assert note.endswith("trying json_object_schema")


def test_lm_studio_takes_json_schema(run):
    with FakeOpenAI(response_formats=LM_STUDIO) as fake:
        fake.push(Reply(content=GOOD))
        report = run([req()], openai_settings(fake))
    assert [f["type"] for f in formats(fake)] == ["json_schema"] and report.modes["openai"] == "json_schema"


def test_a_text_only_server_ends_in_text_mode_with_the_json_extracted(run):
    with FakeOpenAI(response_formats={"text"}) as fake:
        fake.responder = lambda body: Reply(content=f"Sure! Here it is:\n```json\n{json.dumps(GOOD)}\n```\nEnjoy.")
        report = run([req("v1:1"), req("v1:2", slug="b")], openai_settings(fake))
        sent = formats(fake)
    assert [f and f["type"] for f in sent] == ["json_schema", "json_object", "json_object", None, None]
    assert "schema" in sent[1] and "schema" not in sent[2]
    assert run.answers["v1:1"].output == GOOD and run.answers["v1:2"].provider == "openai"
    assert report.modes == {"openai": "text"}
    assert sum("trying" in n for n in report.notes) == 3


def test_a_configured_mode_is_not_negotiated_and_says_why(run):
    with FakeOpenAI(response_formats=LLAMA_CPP_PYTHON) as fake:
        report = run([req("v1:1", offline=offline), req("v1:2", slug="b", offline=offline)],
                     openai_settings(fake, response_format="json_schema"))
        assert len(fake.chat_calls()) == 1  # the refusal holds for every request: not asked again
    assert {a.provider for a in run.answers.values()} == {"template"}
    record = report.tiers["caption/aluminum"]
    assert record.provider == "template"
    assert record.left[0].startswith("openai: structured output json_schema refused (HTTP 500:")


def test_json_object_schema_mode_can_be_configured(run):
    with FakeOpenAI(response_formats=LLAMA_CPP_PYTHON) as fake:
        fake.push(Reply(content=GOOD))
        run([req()], openai_settings(fake, response_format="json_object_schema"))
        assert formats(fake) == [{"type": "json_object", "schema": SCHEMA}]


def test_ollama_format_schema_then_json_on_an_old_server(run):
    """Requests refused at once (concurrency 2) step the mode down once."""
    with FakeOllama(schema_format=False) as fo:
        fo.responder = lambda body: Reply(content=GOOD, delay=0.05)
        report = run([req("v1:1"), req("v1:2", slug="b")], settings(["ollama"], fo=fo))
        sent = [c.body.get("format") for c in fo.chat_calls()]
    # a request that read the mode before the first refusal may reach the server after the first
    # retry, so the order varies; each request asks with the schema at most once, then with json
    assert sent[0] == SCHEMA and sent[-1] == "json"
    assert sent.count("json") == 2 and sent.count(SCHEMA) in (1, 2) and len(sent) in (3, 4)
    assert report.modes == {"ollama": "json_object"}
    [note] = [n for n in report.notes if "trying" in n]
    assert "json_schema refused (HTTP 400: invalid format" in note
    assert json.dumps(SCHEMA, sort_keys=True) in user_texts(fo.chat_calls()[1])[-1]


# ---- repair ------------------------------------------------------------------------------------


def test_each_retry_changes_seed_and_temperature_and_names_every_error(run):
    with FakeOpenAI() as fake:
        fake.push(Reply(content={"text": "Too short", "extra": 1}), Reply(content={"text": "Still short"}),
                  Reply(content=GOOD))
        run([req(validators=CAPTION_RULES)], openai_settings(fake))
        calls = fake.chat_calls()
    assert [(c.body["seed"], c.body["temperature"]) for c in calls] == [(7, 0.4), (8, 0.6), (9, 0.8)]
    feedback = user_texts(calls[1])[-1]
    # the schema's error and the content validators' errors, in one repair prompt
    assert "Additional properties are not allowed ('extra' was unexpected)" in feedback
    assert "text: has 2 words, expected at least 3" in feedback
    assert "must mention the material name 'Aluminum'" in feedback
    assert run.answers["v1:aa"].output == GOOD


def test_a_cut_off_answer_is_asked_to_be_shorter(run):
    with FakeOpenAI() as fake:
        fake.push(Reply(content=GOOD, truncate=True, finish_reason="length"), Reply(content=GOOD))
        run([req()], openai_settings(fake))
        first, second = fake.chat_calls()
    ask = user_texts(second)[-1]
    assert "finish_reason=length, max_tokens=200" in ask and "SHORTER" in ask
    assert second.body["seed"] != first.body["seed"]
    assert run.answers["v1:aa"].provider == "openai"


# ---- health: can it answer, patiently, and again later ----------------------------------------------


def _occupy(fake: FakeOpenAI, seconds: float) -> threading.Thread:
    """Another client holding the server's only slot for `seconds`."""
    fake.push(Reply(content=GOOD, delay=seconds))
    body = {"model": "other", "messages": [{"role": "user", "content": "hi"}]}
    thread = threading.Thread(target=httpx.post, args=(fake.base_url + "/chat/completions",),
                              kwargs={"json": body, "timeout": 30}, daemon=True)
    thread.start()
    fake.wait_until(lambda: fake.in_flight == 1, what="the other client's request")
    return thread


def test_a_busy_local_server_is_waited_for(run):
    with FakeOpenAI(single_slot=True) as fake:
        other = _occupy(fake, 0.8)
        fake.push(Reply(content=GOOD))
        report = run([req(offline=offline)], openai_settings(fake))
        other.join(10)
        models = [c for c in fake.calls if c.path == "/v1/models"]
        ours = fake.chat_calls()[-1]
    assert run.answers["v1:aa"].provider == "openai"
    assert len(models) == 1 and ours.at > models[0].at
    assert not any("skipped" in n for n in report.notes)


def test_an_impatient_health_check_is_probed_again_later_in_the_build(run):
    with FakeOpenAI(single_slot=True) as fake:
        s = openai_settings(fake, health_timeout=0.2, health_retry_after=0)
        session = LLMSession(s)
        other = _occupy(fake, 1.0)
        first = run([req("v1:1", offline=offline)], s, session=session)
        other.join(10)
        fake.push(Reply(content=GOOD))
        run([req("v1:2", slug="b", offline=offline)], s, session=session)
        probes = [c for c in fake.calls if c.path == "/v1/models"]
    assert run.answers["v1:1"].provider == "template" and run.answers["v1:2"].provider == "openai"
    assert len(probes) == 2
    assert any("within 0.2s (health_timeout)" in n and "probed again" in n for n in first.notes)
    assert "openai: unhealthy: no answer" in first.tiers["caption/aluminum"].left[0]


def test_without_a_models_route_health_asks_for_one_token(run):
    with FakeOpenAI(models_status=404) as fake:
        [(name, ok, detail)] = check_health(openai_settings(fake, chain=("openai",)))
        [ping] = fake.chat_calls()
    assert (name, ok) == ("openai", True) and "answered a 1-token completion" in detail
    assert ping.body["max_tokens"] == 1


def test_a_dead_server_is_unhealthy(run):
    fake = FakeOpenAI().start()
    fake.stop()
    [(_, ok, detail)] = check_health(openai_settings(fake, chain=("openai",)))
    assert not ok and "connection refused" in detail


# ---- tiers, strictness, cost ------------------------------------------------------------------------


def test_why_each_tier_was_left_is_kept_when_a_later_tier_succeeds(run):
    with FakeOpenAI() as fake:
        fake.responder = lambda body: Reply(status=500, error="llama_decode returned -3 " + "x" * 300)
        report = run([req(offline=offline)], openai_settings(fake))
    assert run.answers["v1:aa"].provider == "template"
    [left] = report.tiers["caption/aluminum"].left
    assert left.startswith("openai: HTTP 500 from http://127.0.0.1:") and "llama_decode returned -3" in left
    assert len(left) < 220  # the server's text, shortened
    [line] = report.tier_lines()
    assert line.startswith("caption/aluminum: template after openai: HTTP 500")
    assert (report.model_answers, report.template_fills) == (0, 1)


def test_strict_fills_nothing_from_the_template_tier(run):
    with FakeOpenAI() as fake:
        fake.responder = lambda body: Reply(status=500, error="out of memory")
        s = LLMSettings.from_config({"chain": ["openai", "template"], "providers": {"openai": {"timeout": 5}}},
                                    {"OPENAI_BASE_URL": fake.base_url}, strict=True)
        report = run([req(offline=offline)], s)
    assert run.answers == {} and run.cache.get("v1:aa") is None
    [(_, reason)] = report.failed
    assert "openai: HTTP 500" in reason and "template: not used (strict" in reason


def test_strict_does_not_serve_a_cached_template_fill(run):
    run([req(offline=offline)], settings(["template"]))
    with FakeOpenAI() as fake:
        fake.push(Reply(content=GOOD))
        s = LLMSettings.from_config({"chain": ["openai", "template"], "strict": True},
                                    {"OPENAI_BASE_URL": fake.base_url})
        report = run([req(offline=offline)], s)
        assert len(fake.chat_calls()) == 1
    assert run.answers["v1:aa"].provider == "openai" and report.cache_hits == 0


def test_a_loopback_server_costs_nothing(run):
    with FakeOpenAI() as fake:
        fake.push(Reply(content=GOOD, prompt_tokens=1000, completion_tokens=500))
        report = run([req()], openai_settings(fake))
    rows = {r[0]: r for r in report.summary_rows()}
    assert rows["openai"][-1] == "$0.0000" and rows["total"][-1] == "$0.0000"
    remote = LLMSettings.from_config({}, {"OPENAI_BASE_URL": "https://api.example.com/v1"})
    assert not remote.provider("openai").local and remote.provider("openai").health_wait == 10
    assert openai_settings(fake).provider("openai").health_wait == 5  # local: the call timeout
