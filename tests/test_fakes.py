"""Tests of the loopback fake servers, driven only through the official ollama / groq clients."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import groq
import httpx
import ollama
import pytest

from tests.fakes import LLAMA_CPP_PYTHON, LM_STUDIO, BatchPlan, FakeGroq, FakeOllama, FakeOpenAI, Reply

MODEL = "llama3.2"
GROQ_MODEL = "llama-3.1-8b-instant"
MSGS = [{"role": "user", "content": "Describe the page as JSON."}]


# ------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------


@pytest.fixture
def fake_ollama():
    with FakeOllama(models=["llama3.2:latest"]) as fake:
        yield fake
    assert not fake.server_errors, fake.server_errors


@pytest.fixture
def ollama_client(fake_ollama):
    client = ollama.Client(host=fake_ollama.url, timeout=5)
    yield client
    client.close()


@pytest.fixture
def fake_groq():
    with FakeGroq(api_key="test-key") as fake:
        yield fake
    assert not fake.server_errors, fake.server_errors


@pytest.fixture
def groq_client(fake_groq):
    with groq.Groq(base_url=fake_groq.url, api_key="test-key", max_retries=0, timeout=5) as client:
        yield client


# ------------------------------------------------------------------------------------
# Ollama
# ------------------------------------------------------------------------------------


def test_ollama_liveness_tags_ps(fake_ollama, ollama_client):
    tags = ollama_client.list()
    assert [m.model for m in tags.models] == ["llama3.2:latest"]
    details = tags.models[0].details
    assert details.family == "llama" and details.format == "gguf" and details.parameter_size == "3.2B"
    assert ollama_client.ps().models == []
    ollama_client.chat(model=MODEL, messages=MSGS)
    assert [m.model for m in ollama_client.ps().models] == ["llama3.2:latest"]
    assert [(c.method, c.path) for c in fake_ollama.calls] == [
        ("GET", "/api/tags"), ("GET", "/api/ps"), ("POST", "/api/chat"), ("GET", "/api/ps"),
    ]
    assert len(fake_ollama.chat_calls()) == 1


def test_ollama_tags_failure():
    with FakeOllama(models=["llama3.2:latest"], tags_status=500) as fake, ollama.Client(host=fake.url, timeout=5) as c:
        with pytest.raises(ollama.ResponseError) as ei:
            c.list()
        assert ei.value.status_code == 500
        assert c.chat(model=MODEL, messages=MSGS).message.content == "{}"  # generation still works


def test_ollama_models_none_accepts_any_model():
    with FakeOllama(models=None) as fake, ollama.Client(host=fake.url, timeout=5) as c:
        assert c.list().models == []
        assert c.chat(model="Qwen2.5:7B", messages=MSGS).message.content == "{}"


def test_ollama_json_round_trip_with_usage(fake_ollama, ollama_client):
    fake_ollama.push(Reply(content={"title": "Home", "tags": ["a", "b"]}, prompt_tokens=12, completion_tokens=7))
    resp = ollama_client.chat(model=MODEL, messages=MSGS, format="json", options={"temperature": 0})
    assert json.loads(resp.message.content) == {"title": "Home", "tags": ["a", "b"]}
    assert resp.done and resp.done_reason == "stop"
    assert resp.prompt_eval_count == 12 and resp.eval_count == 7 and resp.eval_duration > 0
    # default responder once the queue is empty: content "{}"
    assert ollama_client.chat(model=MODEL, messages=MSGS).message.content == "{}"
    call = fake_ollama.chat_calls()[0]
    assert call.method == "POST" and call.path == "/api/chat"
    assert call.body["format"] == "json" and call.body["stream"] is False and call.body["tools"] == []
    assert call.headers["content-type"] == "application/json"


def test_ollama_metrics_omitted_and_generate(fake_ollama, ollama_client):
    fake_ollama.responder = lambda req: Reply(content="echo:" + req["prompt"], prompt_tokens=None)
    resp = ollama_client.generate(model="llama3.2:latest", prompt="hello")
    assert resp.response == "echo:hello"
    assert resp.prompt_eval_count is None and resp.eval_count == 40
    assert resp.context  # non-raw generate returns a context
    load = ollama_client.generate(model=MODEL, prompt="")  # empty prompt = load the model
    assert load.done_reason == "load" and load.response == ""


def test_ollama_streaming(fake_ollama, ollama_client):
    content = json.dumps({"summary": "a fairly long streamed answer split over several NDJSON chunks"})
    fake_ollama.push(Reply(content=content, prompt_tokens=5, completion_tokens=9))
    chunks = list(ollama_client.chat(model=MODEL, messages=MSGS, stream=True))
    assert len(chunks) > 2
    assert "".join(c.message.content for c in chunks) == content
    assert all(not c.done and c.eval_count is None and c.prompt_eval_count is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.done and last.done_reason == "stop" and last.eval_count == 9 and last.prompt_eval_count == 5


def test_ollama_stream_error_mid_stream(fake_ollama, ollama_client):
    fake_ollama.push(Reply(content="x" * 64, stream_error=True))
    got = []
    with pytest.raises(ollama.ResponseError) as ei:
        for chunk in ollama_client.chat(model=MODEL, messages=MSGS, stream=True):
            got.append(chunk.message.content)
    assert got  # some content arrived before the error line
    assert ei.value.status_code == -1
    assert "error was encountered" in ei.value.error


def test_ollama_model_missing_404(fake_ollama, ollama_client):
    with pytest.raises(ollama.ResponseError) as ei:
        ollama_client.chat(model="mistral", messages=MSGS)
    assert ei.value.status_code == 404
    assert ei.value.error == "model 'mistral' not found"
    assert fake_ollama.pending_replies == 0
    # the legacy wording can be scripted
    fake_ollama.push(Reply(status=404, error='model "llama3.2" not found, try pulling it first'))
    with pytest.raises(ollama.ResponseError) as ei:
        ollama_client.chat(model=MODEL, messages=MSGS)
    assert ei.value.status_code == 404 and "not found" in ei.value.error


@pytest.mark.parametrize("status", [500, 503])
def test_ollama_server_errors(fake_ollama, ollama_client, status):
    fake_ollama.push(Reply(status=status))
    with pytest.raises(ollama.ResponseError) as ei:
        ollama_client.chat(model=MODEL, messages=MSGS)
    assert ei.value.status_code == status
    if status == 503:
        assert ei.value.error.startswith("server busy")
    # streaming request: error before the first byte is a plain JSON error too
    fake_ollama.push(Reply(status=status, error="boom"))
    with pytest.raises(ollama.ResponseError) as ei:
        list(ollama_client.chat(model=MODEL, messages=MSGS, stream=True))
    assert ei.value.status_code == status and ei.value.error == "boom"


def test_ollama_old_server_refuses_a_schema_format_and_is_slow_to_list():
    with FakeOllama(schema_format=False, tags_delay=0.3) as fake, ollama.Client(host=fake.url, timeout=5) as c:
        with pytest.raises(ollama.ResponseError) as ei:
            c.chat(model=MODEL, messages=MSGS, format={"type": "object"})
        assert ei.value.status_code == 400 and ei.value.error.startswith("invalid format:")
        assert c.chat(model=MODEL, messages=MSGS, format="json").message.content == "{}"
        t0 = time.monotonic()
        assert c.list().models[0].model == "llama3.2:latest"
        assert time.monotonic() - t0 >= 0.3


def test_ollama_timeout_via_delay(fake_ollama):
    fake_ollama.push(Reply(delay=10))
    t0 = time.monotonic()
    with ollama.Client(host=fake_ollama.url, timeout=0.2) as client, pytest.raises(httpx.TimeoutException):
        client.chat(model=MODEL, messages=MSGS)
    assert time.monotonic() - t0 < 2
    t0 = time.monotonic()
    fake_ollama.stop()  # interrupts the delayed reply
    assert time.monotonic() - t0 < 2


def test_ollama_closed_port():
    fake = FakeOllama().start()
    url = fake.url
    fake.stop()
    with ollama.Client(host=url, timeout=2) as client, pytest.raises(ConnectionError):
        client.chat(model=MODEL, messages=MSGS)


def test_ollama_drop(fake_ollama, ollama_client):
    fake_ollama.push(Reply(drop=True))
    with pytest.raises(httpx.RemoteProtocolError):
        ollama_client.chat(model=MODEL, messages=MSGS)
    # the server keeps serving afterwards
    assert ollama_client.chat(model=MODEL, messages=MSGS).message.content == "{}"


def test_ollama_done_reason_length_truncated(fake_ollama, ollama_client):
    fake_ollama.push(Reply(content={"title": "A title that is long enough"}, finish_reason="length", truncate=True))
    resp = ollama_client.chat(model=MODEL, messages=MSGS, format="json")
    assert resp.done_reason == "length"
    assert resp.message.content.startswith('{"title"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.message.content)


def test_ollama_async_and_max_in_flight(fake_ollama):
    gate = threading.Event()

    def responder(req):
        assert gate.wait(5), "gate never opened"
        return {"echo": req["messages"][0]["content"]}

    fake_ollama.responder = responder

    async def main(limit: int, n: int):
        client = ollama.AsyncClient(host=fake_ollama.url, timeout=5)
        sem = asyncio.Semaphore(limit)

        async def one(i):
            async with sem:
                return await client.chat(model=MODEL, messages=[{"role": "user", "content": f"q{i}"}])

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        await asyncio.to_thread(fake_ollama.wait_for_calls, limit)
        in_flight = fake_ollama.in_flight
        gate.set()
        results = await asyncio.gather(*tasks)
        await client.close()
        return in_flight, results

    in_flight, results = asyncio.run(main(limit=2, n=6))
    assert in_flight == 2
    assert sorted(json.loads(r.message.content)["echo"] for r in results) == [f"q{i}" for i in range(6)]
    assert fake_ollama.max_in_flight == 2 and fake_ollama.in_flight == 0
    assert len(fake_ollama.chat_calls()) == 6

    # unbounded: all requests really are concurrent on the fake
    fake_ollama.reset()
    gate.clear()
    fake_ollama.responder = responder
    in_flight, _ = asyncio.run(main(limit=5, n=5))
    assert in_flight == 5 and fake_ollama.max_in_flight == 5


def test_wait_for_calls_times_out(fake_ollama):
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="expected >= 1 generation calls"):
        fake_ollama.wait_for_calls(1, timeout=0.05)
    assert time.monotonic() - t0 < 1


# ------------------------------------------------------------------------------------
# Groq: chat completions
# ------------------------------------------------------------------------------------


def test_groq_json_round_trip_with_usage(fake_groq, groq_client):
    fake_groq.push(Reply(content={"title": "Home"}, prompt_tokens=55, completion_tokens=21))
    raw = groq_client.chat.completions.with_raw_response.create(
        model=GROQ_MODEL, messages=MSGS, temperature=0, seed=42, response_format={"type": "json_object"}
    )
    resp = raw.parse()
    assert json.loads(resp.choices[0].message.content) == {"title": "Home"}
    assert resp.choices[0].finish_reason == "stop"
    assert resp.id.startswith("chatcmpl-") and resp.object == "chat.completion" and resp.model == GROQ_MODEL
    assert resp.usage.prompt_tokens == 55 and resp.usage.completion_tokens == 21 and resp.usage.total_tokens == 76
    assert resp.system_fingerprint.startswith("fp_")
    assert resp.x_groq.id.startswith("req_") and resp.x_groq.seed == 42
    assert raw.headers["x-request-id"] == resp.x_groq.id
    assert int(raw.headers["x-ratelimit-remaining-requests"]) < int(raw.headers["x-ratelimit-limit-requests"])
    assert "x-ratelimit-reset-tokens" in raw.headers
    call = fake_groq.chat_calls()[0]
    assert call.headers["authorization"] == "Bearer test-key"
    assert call.body["response_format"] == {"type": "json_object"} and call.body["seed"] == 42


def test_groq_async_client(fake_groq):
    fake_groq.responder = lambda req: {"n": len(req["messages"])}

    async def main():
        async with groq.AsyncGroq(base_url=fake_groq.url, api_key="test-key", max_retries=0, timeout=5) as client:
            return await asyncio.gather(
                *(client.chat.completions.create(model=GROQ_MODEL, messages=MSGS) for _ in range(3))
            )

    results = asyncio.run(main())
    assert [json.loads(r.choices[0].message.content) for r in results] == [{"n": 1}] * 3
    assert len(fake_groq.chat_calls()) == 3


def test_groq_streaming(fake_groq, groq_client):
    content = json.dumps({"summary": "streamed over server-sent events in several chunks"})
    fake_groq.push(Reply(content=content, prompt_tokens=3, completion_tokens=4))
    chunks = list(groq_client.chat.completions.create(model=GROQ_MODEL, messages=MSGS, stream=True))
    assert len(chunks) > 2 and all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].x_groq.usage.total_tokens == 7


def test_groq_stream_error(fake_groq, groq_client):
    fake_groq.push(Reply(content="y" * 40, stream_error=True, error="stream broke"))
    with pytest.raises(groq.APIError, match="stream broke"):
        list(groq_client.chat.completions.create(model=GROQ_MODEL, messages=MSGS, stream=True))


def test_groq_429_retry_after(fake_groq, groq_client):
    fake_groq.push(Reply(status=429, headers={"retry-after": "2"}))
    with pytest.raises(groq.RateLimitError) as ei:
        groq_client.chat.completions.create(model=GROQ_MODEL, messages=MSGS)
    e = ei.value
    assert e.status_code == 429
    assert e.response.headers["retry-after"] == "2"
    assert "x-ratelimit-remaining-tokens" in e.response.headers
    assert e.body["error"]["code"] == "rate_limit_exceeded" and e.body["error"]["type"] == "tokens"
    assert "Rate limit reached" in e.body["error"]["message"]


def test_groq_413_request_too_large(fake_groq, groq_client):
    fake_groq.push(Reply(status=413))
    with pytest.raises(groq.APIStatusError) as ei:
        groq_client.chat.completions.create(model=GROQ_MODEL, messages=MSGS)
    assert ei.value.status_code == 413 and not isinstance(ei.value, groq.RateLimitError)
    assert ei.value.body["error"]["code"] == "rate_limit_exceeded"
    assert ei.value.body["error"]["message"].startswith("Request too large")


def test_groq_400_json_validate_failed(fake_groq, groq_client):
    fake_groq.push(Reply(status=400, error_code="json_validate_failed", failed_generation='```json\n{"title": '))
    with pytest.raises(groq.BadRequestError) as ei:
        groq_client.chat.completions.create(
            model=GROQ_MODEL, messages=MSGS, response_format={"type": "json_object"}
        )
    err = ei.value.body["error"]
    assert err["code"] == "json_validate_failed" and err["type"] == "invalid_request_error"
    assert err["failed_generation"] == '```json\n{"title": '
    assert err["message"].startswith("Failed to generate JSON")


def test_groq_validate_json_mode():
    with FakeGroq(validate_json=True) as fake, groq.Groq(base_url=fake.url, api_key="test-key", max_retries=0) as c:
        fake.push(Reply(content="not json"), Reply(content="not json either"))
        with pytest.raises(groq.BadRequestError) as ei:
            c.chat.completions.create(model=GROQ_MODEL, messages=MSGS, response_format={"type": "json_object"})
        assert ei.value.body["error"]["failed_generation"] == "not json"
        # without a JSON response_format the text passes through
        resp = c.chat.completions.create(model=GROQ_MODEL, messages=MSGS)
        assert resp.choices[0].message.content == "not json either"


def test_groq_401_invalid_key(fake_groq):
    with groq.Groq(base_url=fake_groq.url, api_key="wrong", max_retries=0, timeout=5) as client:
        with pytest.raises(groq.AuthenticationError) as ei:
            client.chat.completions.create(model=GROQ_MODEL, messages=MSGS)
    assert ei.value.status_code == 401
    assert ei.value.body == {
        "error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}
    }


@pytest.mark.parametrize("status", [500, 503])
def test_groq_server_errors(fake_groq, groq_client, status):
    fake_groq.push(Reply(status=status))
    with pytest.raises(groq.InternalServerError) as ei:
        groq_client.chat.completions.create(model=GROQ_MODEL, messages=MSGS)
    assert ei.value.status_code == status


def test_groq_finish_reason_length(fake_groq, groq_client):
    fake_groq.push(Reply(content={"caption": "cut off somewhere"}, finish_reason="length", truncate=True))
    resp = groq_client.chat.completions.create(model=GROQ_MODEL, messages=MSGS, max_completion_tokens=8)
    assert resp.choices[0].finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.choices[0].message.content)


def test_groq_timeout_drop_and_closed_port(fake_groq):
    fake_groq.push(Reply(delay=10), Reply(drop=True))
    with groq.Groq(base_url=fake_groq.url, api_key="test-key", max_retries=0, timeout=0.2) as client:
        with pytest.raises(groq.APITimeoutError):
            client.chat.completions.create(model=GROQ_MODEL, messages=MSGS)
        with pytest.raises(groq.APIConnectionError):
            client.chat.completions.create(model=GROQ_MODEL, messages=MSGS)
    fake_groq.stop()
    with groq.Groq(base_url=fake_groq.url, api_key="test-key", max_retries=0, timeout=2) as client:
        with pytest.raises(groq.APIConnectionError) as ei:
            client.chat.completions.create(model=GROQ_MODEL, messages=MSGS)
    assert not isinstance(ei.value, groq.APITimeoutError)


def test_groq_models_and_unknown_model():
    with FakeGroq(models=["llama-3.1-8b-instant"]) as fake:
        with groq.Groq(base_url=fake.url, api_key="test-key", max_retries=0, timeout=5) as client:
            assert [m.id for m in client.models.list().data] == ["llama-3.1-8b-instant"]
            with pytest.raises(groq.NotFoundError) as ei:
                client.chat.completions.create(model="nope", messages=MSGS)
            assert ei.value.body["error"]["code"] == "model_not_found"


# ------------------------------------------------------------------------------------
# Groq: Batch API
# ------------------------------------------------------------------------------------


def _batch_file(ids, model=GROQ_MODEL) -> bytes:
    lines = [
        {
            "custom_id": cid,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "messages": [{"role": "user", "content": f"caption {cid}"}],
                "temperature": 0,
                "response_format": {"type": "json_object"},
            },
        }
        for cid in ids
    ]
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def _run_batch(client, data: bytes, deadline_s: float = 5.0):
    f = client.files.create(file=("batch.jsonl", data), purpose="batch")
    assert f.id.startswith("file_") and f.purpose == "batch" and f.bytes == len(data)
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    statuses = [batch.status]
    deadline = time.monotonic() + deadline_s
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        assert time.monotonic() < deadline, f"batch stuck in {batch.status}"
        batch = client.batches.retrieve(batch.id)
        statuses.append(batch.status)
    return f, batch, statuses


def _lines(client, file_id) -> dict[str, dict]:
    text = client.files.content(file_id).text()
    out = [json.loads(x) for x in text.splitlines() if x.strip()]
    return {x["custom_id"]: x for x in out}


def test_groq_batch_happy_path(fake_groq, groq_client):
    ids = [f"req-{i}" for i in range(6)]
    fake_groq.responder = lambda body: {"caption": body["messages"][0]["content"]}
    fake_groq.batch_plan = BatchPlan(error_custom_ids={"req-4"}, invalid_custom_ids={"req-5"})
    f, batch, statuses = _run_batch(groq_client, _batch_file(ids))
    assert statuses == ["validating", "in_progress", "finalizing", "completed"]
    assert batch.request_counts.total == 6 and batch.request_counts.completed == 4 and batch.request_counts.failed == 2
    assert batch.completed_at and batch.in_progress_at and batch.finalizing_at and batch.expires_at > batch.created_at
    assert fake_groq.batches_created == 1
    # uploaded input kept verbatim
    assert groq_client.files.content(f.id).read() == _batch_file(ids)

    out = _lines(groq_client, batch.output_file_id)
    assert set(out) == {"req-0", "req-1", "req-2", "req-3"}
    raw_order = [json.loads(x)["custom_id"] for x in groq_client.files.content(batch.output_file_id).text().splitlines()]
    assert raw_order != sorted(raw_order)  # shuffled: consumers must join on custom_id
    for cid, line in out.items():
        assert line["id"].startswith("batch_req_out_") and line["error"] is None
        assert line["response"]["status_code"] == 200 and line["response"]["request_id"].startswith("req_")
        body = line["response"]["body"]
        assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
        assert body["usage"]["total_tokens"] == 70 and body["x_groq"]["id"] == line["response"]["request_id"]
        assert json.loads(body["choices"][0]["message"]["content"]) == {"caption": f"caption {cid}"}

    errs = _lines(groq_client, batch.error_file_id)
    assert set(errs) == {"req-4", "req-5"}
    assert errs["req-4"]["response"] is None and errs["req-4"]["error"]["code"]
    bad = errs["req-5"]["response"]
    assert bad["status_code"] == 400 and bad["body"]["error"]["code"] == "json_validate_failed"
    assert "failed_generation" in bad["body"]["error"]

    assert groq_client.files.info(batch.output_file_id).purpose == "batch_output"
    assert [b.id for b in groq_client.batches.list().data] == [batch.id]
    assert groq_client.files.delete(f.id).deleted is True
    assert [x["custom_id"] for x in fake_groq.batch_requests] == ["req-0", "req-1", "req-2", "req-3", "req-5"]
    assert fake_groq.chat_calls() == []  # batch lines are not live calls...
    paths = [(c.method, c.path) for c in fake_groq.calls]  # ...but the batch HTTP requests are logged
    assert ("POST", "/openai/v1/files") in paths and ("POST", "/openai/v1/batches") in paths


def test_groq_batch_uses_pushed_replies_in_input_order(fake_groq, groq_client):
    fake_groq.batch_plan = BatchPlan(polls_per_status=0, shuffle=False)
    fake_groq.push({"n": 0}, Reply(content={"n": 1}, finish_reason="length"))
    _, batch, statuses = _run_batch(groq_client, _batch_file(["a", "b", "c"]))
    assert statuses == ["validating", "completed"]
    out = _lines(groq_client, batch.output_file_id)
    contents = {cid: line["response"]["body"]["choices"][0]["message"]["content"] for cid, line in out.items()}
    assert contents == {"a": '{"n": 0}', "b": '{"n": 1}', "c": "{}"}
    assert out["b"]["response"]["body"]["choices"][0]["finish_reason"] == "length"
    assert batch.error_file_id is None


def test_groq_batch_failed_validation(fake_groq, groq_client):
    fake_groq.batch_plan = BatchPlan(
        validation_errors=[{"line": 2, "message": "model not found", "code": "model_not_found"}]
    )
    _, batch, statuses = _run_batch(groq_client, _batch_file(["a", "b"]))
    assert statuses == ["validating", "failed"]
    assert batch.failed_at and batch.output_file_id is None and batch.error_file_id is None
    assert [(e.line, e.code, e.message) for e in batch.errors.data] == [(2, "model_not_found", "model not found")]
    assert fake_groq.batch_requests == []


def test_groq_batch_malformed_file_fails_validation(fake_groq, groq_client):
    data = _batch_file(["a"]) + b"{not json\n" + _batch_file(["a"])
    _, batch, statuses = _run_batch(groq_client, data)
    assert statuses[-1] == "failed"
    assert {(e.line, e.code) for e in batch.errors.data} == {(2, "invalid_json_line"), (3, "duplicate_custom_id")}


def test_groq_batch_expiry(fake_groq, groq_client):
    fake_groq.batch_plan = BatchPlan(expire_after_fraction=0.5)
    ids = ["a", "b", "c", "d"]
    _, batch, statuses = _run_batch(groq_client, _batch_file(ids))
    assert statuses == ["validating", "in_progress", "expired"]
    assert batch.expired_at and batch.request_counts.completed == 2 and batch.request_counts.failed == 2
    out = _lines(groq_client, batch.output_file_id)
    errs = _lines(groq_client, batch.error_file_id)
    assert set(out) | set(errs) == set(ids) and len(out) == 2
    assert all(x["response"] is None and x["error"]["code"] == "batch_expired" for x in errs.values())


def test_groq_batch_cancel(fake_groq, groq_client):
    f = groq_client.files.create(file=("b.jsonl", _batch_file(["a", "b"])), purpose="batch")
    batch = groq_client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert groq_client.batches.cancel(batch.id).status == "cancelling"
    done = groq_client.batches.retrieve(batch.id)
    assert done.status == "cancelled" and done.cancelled_at and done.output_file_id is None
    with pytest.raises(groq.BadRequestError):
        groq_client.batches.cancel(batch.id)


def test_groq_batch_bad_requests(fake_groq, groq_client):
    with pytest.raises(groq.BadRequestError):
        groq_client.batches.create(input_file_id="file_missing", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(groq.NotFoundError):
        groq_client.batches.retrieve("batch_missing")
    with pytest.raises(groq.NotFoundError):
        groq_client.files.content("file_missing")


# ------------------------------------------------------------------------------------
# OpenAI-compatible local servers
# ------------------------------------------------------------------------------------


def _chat(fake: FakeOpenAI, response_format=None, timeout: float = 5) -> httpx.Response:
    body = {"model": "local", "messages": MSGS}
    if response_format is not None:
        body["response_format"] = response_format
    return httpx.post(fake.base_url + "/chat/completions", json=body, timeout=timeout)


def test_openai_llama_cpp_python_flavour():
    with FakeOpenAI(response_formats=LLAMA_CPP_PYTHON) as fake:
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        r = _chat(fake, {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
        assert r.status_code == 500
        error = r.json()["error"]
        assert "Input should be 'text' or 'json_object'" in error["message"]
        assert error["type"] == "internal_server_error" and error["code"] is None
        fake.push(Reply(content={"a": "b"}))
        r = _chat(fake, {"type": "json_object", "schema": schema})
        assert r.status_code == 200 and json.loads(r.json()["choices"][0]["message"]["content"]) == {"a": "b"}
        assert _chat(fake).status_code == 200
        assert len(fake.refused) == 1 and len(fake.chat_calls()) == 3
        assert not fake.server_errors


def test_openai_lm_studio_flavour():
    with FakeOpenAI(response_formats=LM_STUDIO) as fake:
        r = _chat(fake, {"type": "json_object"})
        assert r.status_code == 400 and r.json() == {"error": "'response_format.type' must be 'json_schema'"}
        assert _chat(fake, {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}).status_code == 200


def test_openai_single_slot_holds_the_models_listing():
    with FakeOpenAI(single_slot=True) as fake:
        fake.push(Reply(content="{}", delay=0.5))
        busy = threading.Thread(target=_chat, args=(fake,), daemon=True)
        busy.start()
        fake.wait_until(lambda: fake.in_flight == 1, what="the busy request")
        t0 = time.monotonic()
        r = httpx.get(fake.base_url + "/models", timeout=5)
        assert r.status_code == 200 and r.json()["object"] == "list"
        assert time.monotonic() - t0 >= 0.3  # waited for the slot
        busy.join(5)
        with pytest.raises(httpx.ReadTimeout):  # and a short timeout sees a busy server as slow
            fake.push(Reply(content="{}", delay=0.5))
            busy = threading.Thread(target=_chat, args=(fake,), daemon=True)
            busy.start()
            fake.wait_until(lambda: fake.in_flight == 1, what="the busy request")
            httpx.get(fake.base_url + "/models", timeout=0.1)
        busy.join(5)


def test_openai_without_a_models_route():
    with FakeOpenAI(models_status=404) as fake:
        assert httpx.get(fake.base_url + "/models", timeout=5).status_code == 404
        assert _chat(fake).status_code == 200
