"""site.yaml's `llm:` section, environment overrides, the cache, the rate window and retry-after parsing."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from generator.errors import InputError
from generator.llm import LLM_SETTINGS_SCHEMA, Answer, AnswerCache, LLMSettings
from generator.llm.providers.base import go_duration, retry_after_from
from generator.llm.ratelimit import RateWindow

SUGGESTED = {
    "chain": ["ollama", "groq", "template"],
    "repair_retries": 2,
    "providers": {
        "ollama": {"host": "http://127.0.0.1:11434", "model": "llama3.2", "timeout": 120, "connect_timeout": 2,
                   "concurrency": 2},
        "groq": {"model": "llama-3.1-8b-instant", "timeout": 60, "concurrency": 8, "rpm": 30, "tpm": 6000,
                 "max_retry_after": 10, "response_format": "json_schema"},
        "openai": {"base_url": "http://127.0.0.1:1234/v1", "model": "local-model", "timeout": 120, "concurrency": 2},
        "template": {},
    },
    "prices": {"groq:llama-3.1-8b-instant": {"input": 0.05, "output": 0.08}},
}


def test_schema_accepts_the_suggested_section_and_empty():
    Draft202012Validator.check_schema(LLM_SETTINGS_SCHEMA)
    assert list(Draft202012Validator(LLM_SETTINGS_SCHEMA).iter_errors(SUGGESTED)) == []
    assert list(Draft202012Validator(LLM_SETTINGS_SCHEMA).iter_errors({})) == []


@pytest.mark.parametrize("section", [
    {"chain": ["ollama", "gpt"]},
    {"providers": {"groq": {"api_key": "gsk_x"}}},  # secrets belong in the environment
    {"providers": {"groq": {"concurrency": 0}}},
    {"providers": {"groq": {"response_format": "xml"}}},
    {"providers": {"groq": {"response_format": "json_object_schema"}}},  # Groq has no such mode
    {"providers": {"openai": {"health_timeout": 0}}},
    {"strict": "yes"},
    {"repair_temperature_step": 2},
    {"repair_retries": -1},
    {"prices": {"groq:m": {"input": 1}}},
    {"unknown": 1},
])
def test_schema_rejects(section):
    assert list(Draft202012Validator(LLM_SETTINGS_SCHEMA).iter_errors(section))
    with pytest.raises(InputError):
        LLMSettings.from_config(section, {})


def test_defaults():
    s = LLMSettings.from_config({}, {})
    assert s.chain == ("ollama", "groq", "template") and s.repair_retries == 2
    o, g = s.provider("ollama"), s.provider("groq")
    assert (o.base_url, o.model, o.timeout, o.connect_timeout, o.concurrency) == (
        "http://127.0.0.1:11434", "llama3.2", 120.0, 2.0, 2)
    assert (g.base_url, g.model, g.rpm, g.tpm, g.max_retry_after, g.api_key) == (
        "https://api.groq.com", "llama-3.1-8b-instant", 30, 6000, 10.0, None)


def test_structured_output_health_and_strict_settings():
    s = LLMSettings.from_config({}, {})
    assert {s.provider(n).response_format for n in ("ollama", "groq", "openai")} == {"auto"}
    assert s.strict is False and s.repair_temperature_step == 0.2
    o = s.provider("openai")
    assert o.local and o.health_wait == 120.0 and o.health_retry_after == 30.0  # loopback: patient
    s = LLMSettings.from_config({"strict": True, "repair_temperature_step": 0.1, "providers": {
        "openai": {"response_format": "none", "health_timeout": 3, "health_retry_after": 0},
        "ollama": {"response_format": "json_object"}}}, {"OPENAI_BASE_URL": "https://vllm.example.org/v1"})
    o = s.provider("openai")
    assert (o.response_format, o.health_wait, o.health_retry_after, o.local) == ("text", 3.0, 0.0, False)
    assert s.provider("ollama").response_format == "json_object" and s.strict
    assert s.provider("groq").health_wait == 10.0  # remote: a short health check
    assert LLMSettings.from_config({}, {}, strict=True).strict  # --strict
    assert LLMSettings.from_config({"strict": True}, {}, strict=False).strict  # cannot turn site.yaml's off


def test_suggested_section_and_env_mapping():
    env = {"OLLAMA_HOST": "http://10.0.0.5:11434", "GROQ_API_KEY": "gsk_secret_value", "GROQ_BASE_URL": "http://proxy:8080",
           "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1", "OPENAI_API_KEY": "sk-local"}
    s = LLMSettings.from_config(SUGGESTED, env)
    assert s.provider("ollama").base_url == "http://10.0.0.5:11434"  # env wins over llm.providers.ollama.host
    assert s.provider("groq").base_url == "http://proxy:8080"
    assert s.provider("groq").api_key.reveal() == "gsk_secret_value"
    assert s.provider("openai").base_url == "http://127.0.0.1:8000/v1"
    assert s.provider("openai").api_key.reveal() == "sk-local"
    assert s.price("groq", "llama-3.1-8b-instant") == {"input": 0.05, "output": 0.08}
    assert "gsk_secret_value" not in repr(s) and "sk-local" not in str(s)
    assert sorted(s.secrets()) == ["gsk_secret_value", "sk-local"]


def test_chain_env_and_cli_override():
    assert LLMSettings.from_config(SUGGESTED, {"SITE_LLM_CHAIN": "groq, template"}).chain == ("groq", "template")
    s = LLMSettings.from_config(SUGGESTED, {"SITE_LLM_CHAIN": "groq"}, chain_override=["template"])
    assert s.chain == ("template",)  # --chain wins over the environment
    assert LLMSettings.from_config({}, {}, chain_override=["ollama,template"]).chain == ("ollama", "template")
    with pytest.raises(InputError) as e:
        LLMSettings.from_config({}, {"SITE_LLM_CHAIN": "olama"})
    assert "unknown provider 'olama'" in str(e.value) and "SITE_LLM_CHAIN" in str(e.value)
    with pytest.raises(InputError) as e:
        LLMSettings.from_config({}, {}, chain_override=["nope"])
    assert "--chain" in str(e.value)


def test_null_limits_mean_unlimited():
    s = LLMSettings.from_config({"providers": {"groq": {"rpm": None, "tpm": None}}}, {})
    assert s.provider("groq").rpm is None and s.provider("groq").tpm is None


# ---- cache -------------------------------------------------------------------------------------------


def test_cache_roundtrip_stats_clear(tmp_path):
    with AnswerCache(tmp_path / "llm") as cache:
        assert cache.get("v1:x") is None
        cache.put("v1:x", Answer(output={"a": 1}, provider="groq", model="m1",
                                 usage={"prompt_tokens": 3, "completion_tokens": 4}))
        cache.put("v1:y", Answer(output={"b": 2}, provider="template", model="template", usage={}))
        a = cache.get("v1:x")
        assert (a.output, a.provider, a.model, a.usage, a.from_cache) == (
            {"a": 1}, "groq", "m1", {"prompt_tokens": 3, "completion_tokens": 4}, True)
        st = cache.stats()
        assert st["entries"] == 2 and st["by_provider"] == {"groq": 1, "template": 1} and st["size_bytes"] > 0
        assert cache.clear() == 2 and cache.get("v1:x") is None
    with AnswerCache(tmp_path / "llm") as cache:  # persisted across instances
        cache.put("v1:z", Answer(output={}, provider="ollama", model="llama3.2", usage={}))
    with AnswerCache(tmp_path / "llm") as cache:
        assert cache.get("v1:z").provider == "ollama"


# ---- rate window (pure) ------------------------------------------------------------------------------


def test_rate_window_requests():
    w = RateWindow(rpm=3, period=10.0, safety=0.0)
    for t in (0.0, 0.0, 1.0):
        assert w.delay(1, t) == 0
        w.record(1, t)
    assert w.delay(1, 2.0) == pytest.approx(w.window - 2.0)  # the 4th waits until the 1st leaves
    w.record(1, w.window)  # the two sent at 0.0 have left: [1.0, window] in the window
    assert w.delay(1, w.window) == 0
    w.record(1, w.window)  # [1.0, window, window]: full until the one sent at 1.0 leaves
    assert w.delay(1, w.window) == pytest.approx(1.0)


def test_rate_window_tokens_and_pause():
    w = RateWindow(tpm=100, period=10.0, safety=0.0)
    w.record(60, 0.0)
    assert w.delay(40, 1.0) == 0
    w.record(40, 1.0)
    assert w.delay(10, 2.0) == pytest.approx(w.window - 2.0)
    assert w.delay(500, w.window + 5) == 0  # both entries have left the window
    w2 = RateWindow()
    w2.pause(5.0, now=100.0)
    assert w2.delay(1, 101.0) == pytest.approx(4.0) and w2.blocked_for(102.0) == pytest.approx(3.0)


def test_rate_window_oversized_request_goes_alone():
    w = RateWindow(tpm=100, period=10.0, safety=0.0)
    assert w.delay(500, 0.0) == 0  # nothing in flight: let it through (the server will say 413)
    w.record(500, 0.0)
    assert w.delay(1, 1.0) > 0


# ---- retry-after ---------------------------------------------------------------------------------------


def test_go_durations():
    assert go_duration("172ms") == pytest.approx(0.172)
    assert go_duration("7.66s") == pytest.approx(7.66)
    assert go_duration("2m59.56s") == pytest.approx(179.56)
    assert go_duration("1h2m") == pytest.approx(3720)
    assert go_duration("soon") is None and go_duration("") is None


def test_retry_after_sources():
    assert retry_after_from({"retry-after": "5"}) == 5
    assert retry_after_from({"retry-after-ms": "250", "retry-after": "5"}) == 0.25
    assert retry_after_from({"x-ratelimit-reset-requests": "2m0s", "x-ratelimit-reset-tokens": "7.66s"},
                            kind="tokens") == pytest.approx(7.66)
    assert retry_after_from({"x-ratelimit-reset-requests": "2m0s", "x-ratelimit-reset-tokens": "7.66s"}) == 120
    assert retry_after_from({}, "Rate limit reached ... Please try again in 4.77s. Need more?") == pytest.approx(4.77)
    assert retry_after_from({}, "no hint") is None
    assert retry_after_from({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0  # in the past
