"""Bulk generation through the Groq Batch API (SPEC §4.4, PROTOCOLS §3): `site build --batch`.

    outcome = run_batch(requests, settings, cache, on_answer, root / ".cache" / "batch")
    # outcome.leftovers -> the live chain; outcome.pending -> a batch is still running (--no-wait)

The caller runs it once per dependency level, like produce():

1. Requests the cache answers (unless `fresh`) go straight to `on_answer`.
2. Requests that a recorded batch holds resume that batch. The others are written as JSONL
   (`custom_id` = the content key, `body` = exactly what the live Groq provider sends), split at
   `llm.batch.max_lines` / `max_bytes`, uploaded and submitted. Every batch is recorded in
   `<state_dir>/batch.json` (atomically) before its file is uploaded and again once it has an id,
   so a kill at any moment, then the same command, finds it again instead of paying twice; one
   created but not yet recorded is found by its metadata tag.
3. Polling with backoff until every batch is final; then the output and error files are
   downloaded to disk and read line by line: each line is judged exactly as a live answer (JSON,
   schema, the component's validators, no `finish_reason: length`). A valid answer goes to the
   cache and `on_answer` the moment it is read; no list of answers is ever held.
4. Lines that came back invalid or failed go to a second batch with `llm.batch.second_pass_model`
   when it is set (cheap model first, strong model for its failures); what is still unanswered
   (and what an expired or cancelled batch never ran) is returned as `leftovers` for the live
   chain. The batch's record is then removed.

A batch rejected at validation raises BatchRejected with the offending line numbers. The state
file holds ids, content keys and (component, slug) of every line: never a key or a host.
"""

from __future__ import annotations

import json
import os
import re
import secrets as _secrets
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import InputError, Problem, SiteError
from ..writer import atomic_write
from .providers.base import error_info, retry_after_from, short, usage_of
from .report import ProduceReport, ProviderStats
from .settings import LLMSettings, safe_url
from .types import Answer, LLMRequest
from .validators import check_answer

STATE_FILE = "batch.json"
STATE_VERSION = 1
PROVIDER = "groq-batch"  # the report row and the `provider` of answers that came from a batch
ENDPOINT = "/v1/chat/completions"
FINAL = frozenset({"completed", "failed", "expired", "cancelled"})
NOT_RUN = frozenset({"batch_expired", "batch_cancelled"})  # error codes of lines the batch never ran
API_ATTEMPTS = 4  # a status check or download survives this many transient errors in a row
METADATA_TAG = "site_batch"

OnAnswer = Callable[[LLMRequest, Answer], None]


class BatchError(SiteError):
    """The Batch API could not be used (no key, unreachable, refused). The recorded batch is kept."""

    exit_code = 1


class BatchRejected(InputError):
    """Groq rejected a batch input file at validation; `problems` name the offending lines."""


@dataclass
class BatchOutcome:
    report: ProduceReport  # with a "groq-batch" provider row
    leftovers: list[LLMRequest] = field(default_factory=list)  # for the live chain
    pending: bool = False  # --no-wait and a batch is still running: send nothing live


# ---- the state file ---------------------------------------------------------------------------


@dataclass
class _Record:
    """One submitted (or being submitted) batch. `lines[n - 1]` = [key, component, slug] of input
    line n, so a rejected line number names its component."""

    token: str  # our tag: local file names and the batch's metadata
    pass_no: int
    model: str
    lines: list[list[str]]
    created_at: float
    input_file_id: str | None = None
    batch_id: str | None = None
    cancel_requested: bool = False
    _keys: set[str] | None = field(default=None, repr=False, compare=False)

    @property
    def keys(self) -> set[str]:
        if self._keys is None:
            self._keys = {line[0] for line in self.lines}
        return self._keys

    @property
    def input_name(self) -> str:
        return f"input-{self.token}.jsonl"

    @property
    def label(self) -> str:
        return self.batch_id or f"(not submitted yet, tag {self.token})"

    def to_json(self) -> dict:
        return {"token": self.token, "pass": self.pass_no, "model": self.model, "created_at": self.created_at,
                "input_file_id": self.input_file_id, "batch_id": self.batch_id,
                "cancel_requested": self.cancel_requested, "lines": self.lines}

    @classmethod
    def from_json(cls, d: dict) -> "_Record":
        return cls(token=str(d["token"]), pass_no=int(d.get("pass", 1)), model=str(d.get("model", "")),
                   lines=[[str(x) for x in line] for line in d["lines"]], created_at=float(d.get("created_at", 0)),
                   input_file_id=d.get("input_file_id"), batch_id=d.get("batch_id"),
                   cancel_requested=bool(d.get("cancel_requested", False)))


class _State:
    def __init__(self, state_dir: Path, records: list[_Record]):
        self.dir = Path(state_dir)
        self.records = records

    @property
    def path(self) -> Path:
        return self.dir / STATE_FILE

    @classmethod
    def load(cls, state_dir: Path) -> "_State":
        path = Path(state_dir) / STATE_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(state_dir, [])
        try:
            data = json.loads(raw)
            if data.get("v") != STATE_VERSION:
                raise ValueError(f"unknown format version {data.get('v')!r}")
            records = [_Record.from_json(r) for r in data["batches"]]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise BatchError(f"{path} is unreadable ({e}); it records submitted Groq batches: look at it, "
                             "then delete it to forget them") from None
        return cls(state_dir, records)

    def save(self) -> None:
        if not self.records:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            return
        data = {"v": STATE_VERSION, "batches": [r.to_json() for r in self.records]}
        atomic_write(self.path, json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))

    def drop(self, rec: _Record) -> None:
        self.records = [r for r in self.records if r.token != rec.token]
        self.save()
        _unlink(self.dir / rec.input_name)

    def sweep(self) -> None:
        """Remove local files no record refers to (a kill mid-write leaves them)."""
        if not self.dir.is_dir():
            return
        wanted = {r.input_name for r in self.records}
        for p in self.dir.iterdir():
            if p.name != STATE_FILE and p.name not in wanted and re.match(r"^(input-.*\.jsonl|.*\.part)$", p.name):
                _unlink(p)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def pending_keys(state_dir: Path) -> set[str]:
    """Keys of requests in a recorded batch not ingested yet (a cancelled one excepted): a build
    without --batch never sends these live."""
    if not (Path(state_dir) / STATE_FILE).exists():
        return set()
    keys: set[str] = set()
    for rec in _State.load(state_dir).records:
        if not rec.cancel_requested:
            keys |= rec.keys
    return keys


# ---- the Groq client --------------------------------------------------------------------------


class _Transient(BatchError):
    """Still failing after retries (connection, 5xx, 429): the batch may well be fine."""


class _Api:
    """The official sync client with its own retries off; our retries for transient errors."""

    def __init__(self, settings: LLMSettings):
        import groq
        import httpx

        ps = settings.provider("groq")
        self.env = ps.api_key_env or "GROQ_API_KEY"
        if not ps.api_key:
            raise BatchError(f"--batch uses the Groq Batch API: {self.env} is not set")
        self.where = safe_url(ps.base_url)
        self.secrets = settings.secrets()
        self.pause = settings.batch.poll_interval
        self.max_pause = settings.batch.max_poll_interval
        self.client = groq.Groq(api_key=ps.api_key.reveal(), base_url=ps.base_url, max_retries=0,
                                timeout=httpx.Timeout(ps.timeout, connect=ps.connect_timeout))

    def close(self) -> None:
        self.client.close()

    def _redact(self, text: str) -> str:
        for s in self.secrets:
            if s and len(s) >= 4:
                text = text.replace(s, "***")
        return text

    def call(self, what: str, fn: Callable, *args: Any, attempts: int = API_ATTEMPTS, passthrough: tuple = (),
             **kwargs: Any) -> Any:
        import groq

        delay = self.pause
        for attempt in range(1, attempts + 1):
            try:
                return fn(*args, **kwargs)
            except passthrough:
                raise
            except (groq.AuthenticationError, groq.PermissionDeniedError) as e:
                raise BatchError(f"{what}: authentication failed at {self.where} (HTTP {e.status_code}); "
                                 f"check {self.env}") from None
            except (groq.APIConnectionError, groq.RateLimitError, groq.InternalServerError) as e:
                if isinstance(e, groq.APIConnectionError):
                    why, wait = f"not reachable at {self.where} ({type(e).__name__})", delay
                else:
                    msg = error_info(e.body)[0]
                    why = f"HTTP {e.status_code} from {self.where}: {short(msg, 160)}"
                    wait = retry_after_from(e.response.headers, msg) or delay
                if attempt == attempts:
                    raise _Transient(self._redact(f"{what}: {why} ({attempts} attempt(s))")) from None
                time.sleep(min(wait, self.max_pause))
                delay = min(delay * 2, self.max_pause)
            except groq.APIStatusError as e:
                msg = error_info(e.body)[0]
                raise BatchError(self._redact(f"{what}: HTTP {e.status_code} from {self.where}: {short(msg, 200)}")) \
                    from None
            except groq.APIResponseValidationError:
                raise BatchError(f"{what}: malformed response from {self.where}") from None
        raise AssertionError("unreachable")


def _find_created(api: _Api, token: str) -> str | None:
    """The id of a batch carrying our metadata tag, if one was created (the most recent 100 are looked at)."""
    page = api.call("listing batches", api.client.batches.list, extra_query={"limit": 100})
    for b in page.data or []:
        meta = b.metadata if isinstance(b.metadata, dict) else {}
        if meta.get(METADATA_TAG) == token:
            return b.id
    return None


# ---- the request body: exactly the live provider's ----------------------------------------------


def _body_builder(settings: LLMSettings) -> Callable[[LLMRequest, str], dict]:
    """A batch line's body is built by the very code that builds a live call's."""
    from .providers.groq import GroqProvider
    from .structured import with_output_rules

    provider = GroqProvider(replace(settings.provider("groq"), api_key=None))  # no client is made

    def body(req: LLMRequest, model: str) -> dict:
        messages = with_output_rules(req.messages, req.schema, req.validators, req.material)  # as live
        return provider.request_body(messages, req.schema, req.params, model, name=req.component)

    return body


# ---- run_batch ----------------------------------------------------------------------------------


def run_batch(requests: Sequence[LLMRequest], settings: LLMSettings, cache: Any, on_answer: OnAnswer,
              state_dir: Path, *, wait: bool = True, progress: Any = None,
              say: Callable[[str], None] = print) -> BatchOutcome:
    """Answer `requests` through the Groq Batch API (see the module doc)."""
    return _Run(settings, cache, on_answer, Path(state_dir), wait, progress, say).run(list(requests))


class _Run:
    def __init__(self, settings: LLMSettings, cache: Any, on_answer: OnAnswer, state_dir: Path, wait: bool,
                 progress: Any, say: Callable[[str], None]):
        self.settings = settings
        self.bs = settings.batch
        self.cache = cache
        self.on_answer = on_answer
        self.state_dir = state_dir
        self.wait = wait
        self.progress = progress
        self.say = say
        self.report = ProduceReport()
        self.need: dict[str, list[LLMRequest]] = {}  # key -> requests still to answer (one line per key)
        self.leftovers: list[LLMRequest] = []
        self.api: _Api | None = None
        self.state: _State | None = None
        self.rejected: list[Problem] = []
        self.rejected_ids: list[str] = []
        self._body: Callable[[LLMRequest, str], dict] | None = None
        self._bar = False

    # -- plumbing ---------------------------------------------------------------------------------

    def rel(self, name: str) -> str:
        """A path under state_dir as the user sees it (relative to the site root when it can)."""
        path = self.state_dir / name
        try:
            return path.relative_to(self.state_dir.parent.parent).as_posix()
        except ValueError:
            return str(path)

    @property
    def stats(self) -> ProviderStats:
        """The "groq-batch" row of the report (made when first used)."""
        return self.report.stats(PROVIDER)

    def note(self, text: str) -> None:
        """For the build's summary (printed with the report)."""
        if text not in self.report.notes:
            self.report.notes.append(text)

    def tick(self) -> None:
        if self.progress is not None:
            if not self._bar:
                self.progress.start(self.report.total)
                self._bar = True
            self.progress.update(self.report)

    def model_for(self, req: LLMRequest, pass_no: int) -> str:
        if pass_no == 2 and self.bs.second_pass_model:
            return self.bs.second_pass_model
        return self.bs.model or req.models.get("groq") or self.settings.provider("groq").model

    # -- the run ----------------------------------------------------------------------------------

    def run(self, requests: list[LLMRequest]) -> BatchOutcome:
        t0 = time.monotonic()
        self.report.total = len(requests)
        for req in requests:
            hit = None if req.fresh else self.cache.get(req.key)
            if hit is not None:
                self.report.cache_hits += 1
                self.on_answer(req, hit)
                continue
            self.need.setdefault(req.key, []).append(req)
        self.state = _State.load(self.state_dir)
        try:
            self.forget_finished()
            if not self.need:
                return BatchOutcome(self.report)
            self.api = _Api(self.settings)
            pending = self.loop()
        except KeyboardInterrupt:
            if self.state.records:
                self.say(f"interrupted: the batch is recorded in {self.rel(STATE_FILE)}; run the same command "
                         "again to pick it up (`site batch status`, `site batch cancel`)")
            raise
        except BatchError as e:
            if not self.state.records:
                raise
            raise BatchError(f"{e}\nthe batch is recorded in {self.rel(STATE_FILE)}: run the same command again "
                             "to pick it up (`site batch status`, `site batch cancel`)") from None
        finally:
            if self.api is not None:
                self.api.close()
            if self.progress is not None and self._bar:
                self.progress.stop()
            self.report.elapsed = time.monotonic() - t0
        used = self.report.providers.get(PROVIDER)
        if used is not None and used.calls and self.bs.discount:
            self.report.notes.append(f"{PROVIDER}: the cost estimate includes the {self.bs.discount:.0%} batch "
                                     "discount (llm.batch.discount)")
        if pending:
            return BatchOutcome(self.report, [], True)
        self.report.total = len(requests) - len(self.leftovers)
        return BatchOutcome(self.report, self.leftovers, False)

    def forget_finished(self) -> None:
        """Records that no request of this run needs and that are done with: all their answers are in
        the cache (a kill between the last answer and the record's removal), or cancelled by the user."""
        assert self.state is not None
        for rec in list(self.state.records):
            if rec.keys & self.need.keys():
                continue
            if rec.cancel_requested or all(k in self.cache for k in rec.keys):
                self.state.drop(rec)
        self.state.sweep()

    def loop(self) -> bool:
        """Resume or submit, wait, ingest, second pass. True when a batch is still running (no wait)."""
        assert self.state is not None
        jobs = self.resume()
        uncovered = [reqs[0] for key, reqs in self.need.items() if not any(key in r.keys for r in jobs)]
        if uncovered:
            jobs += self.submit(uncovered, pass_no=1)
        while jobs:
            batches = self.poll(jobs)
            if any(b.status not in FINAL for b in batches.values()):
                return True  # the caller says so and sends nothing live
            retry: list[str] = []
            for rec in jobs:
                retry += self.ingest(rec, batches[rec.token])
                self.state.drop(rec)
            if self.rejected:
                raise BatchRejected(
                    f"Groq rejected batch {', '.join(self.rejected_ids)} at validation: none of its lines ran "
                    "and nothing was generated. The problems, by line of its input file (kept for inspection):",
                    self.rejected)
            jobs = []
            if retry:  # only pass 1 returns any, and only with a second_pass_model
                jobs = self.submit([self.need[k][0] for k in retry if k in self.need], pass_no=2)
        return False

    def give_up(self, keys: list[str]) -> None:
        """These go to the live chain."""
        for key in keys:
            self.leftovers += self.need.pop(key, [])

    # -- resume and submit --------------------------------------------------------------------------

    def resume(self) -> list[_Record]:
        """Recorded batches holding requests of this run, checked to exist."""
        import groq

        assert self.state is not None and self.api is not None
        jobs = []
        for rec in list(self.state.records):
            if not rec.keys & self.need.keys():
                self.note(f"{PROVIDER}: recorded batch {rec.label} holds none of these requests; left as it is "
                          "(`site batch status`, `site batch cancel`)")
                continue
            if rec.batch_id is None:  # killed between upload and record: was it created?
                found = _find_created(self.api, rec.token)
                if found is None:
                    self.state.drop(rec)
                    continue
                rec.batch_id = found
                self.state.save()
            try:
                self.api.call("checking the recorded batch", self.api.client.batches.retrieve, rec.batch_id,
                              passthrough=(groq.NotFoundError,))
            except groq.NotFoundError:
                self.note(f"{PROVIDER}: recorded batch {rec.batch_id} no longer exists at {self.api.where}; "
                          "its requests are submitted again")
                self.state.drop(rec)
                continue
            self.say(f"resuming batch {rec.batch_id} ({len(rec.keys & self.need.keys())} request(s))")
            jobs.append(rec)
        return jobs

    def submit(self, reqs: list[LLMRequest], *, pass_no: int) -> list[_Record]:
        """Write, record, upload and create batches for `reqs` (split at max_lines / max_bytes)."""
        assert self.state is not None and self.api is not None
        if self._body is None:
            self._body = _body_builder(self.settings)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        records: list[_Record] = []
        too_big: list[str] = []
        chunk: tuple[_Record, Any, list[int]] | None = None  # (record, open file, [bytes])

        def close(ch: tuple[_Record, Any, list[int]]) -> None:
            rec, fh, _ = ch
            fh.close()
            records.append(rec)

        models: set[str] = set()
        for req in reqs:
            model = self.model_for(req, pass_no)
            line = (json.dumps({"custom_id": req.key, "method": "POST", "url": ENDPOINT,
                                "body": self._body(req, model)}, ensure_ascii=False, separators=(",", ":"))
                    + "\n").encode("utf-8")
            if len(line) > self.bs.max_bytes:
                too_big.append(req.key)
                continue
            if chunk is None or len(chunk[0].lines) >= self.bs.max_lines or chunk[2][0] + len(line) > self.bs.max_bytes:
                if chunk is not None:
                    close(chunk)
                token = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{_secrets.token_hex(4)}"
                rec = _Record(token=token, pass_no=pass_no, model=model, lines=[], created_at=time.time())
                chunk = (rec, open(self.state_dir / rec.input_name, "wb"), [0])
            rec, fh, size = chunk
            fh.write(line)
            size[0] += len(line)
            rec.lines.append([req.key, req.component, req.slug])
            models.add(model)
            if model != rec.model:
                rec.model = "several models"
        if chunk is not None:
            close(chunk)
        if too_big:
            self.give_up(too_big)
            self.note(f"{PROVIDER}: {len(too_big)} request(s) are larger than the batch input limit "
                      f"({self.bs.max_bytes:,} bytes): they go through the live chain")
        if len(records) > 1:
            self.note(f"{PROVIDER}: {sum(len(r.lines) for r in records)} requests split into {len(records)} batches "
                      f"(at most {self.bs.max_lines:,} lines or {self.bs.max_bytes:,} bytes each)")
        for rec in records:
            self.create(rec)
        return records

    def create(self, rec: _Record) -> None:
        """Record, upload, create, record again: a kill at any point loses nothing."""
        assert self.state is not None and self.api is not None
        api = self.api
        self.state.records.append(rec)
        self.state.save()
        with open(self.state_dir / rec.input_name, "rb") as fh:
            uploaded = api.call("uploading the batch input", api.client.files.create,
                                file=(f"site-{rec.token}.jsonl", fh, "application/jsonl"), purpose="batch")
        rec.input_file_id = uploaded.id
        self.state.save()
        for attempt in range(1, API_ATTEMPTS + 1):
            try:
                created = api.call("creating the batch", api.client.batches.create, attempts=1,
                                   input_file_id=rec.input_file_id, endpoint=ENDPOINT,
                                   completion_window=self.bs.completion_window,
                                   metadata={METADATA_TAG: rec.token})
                rec.batch_id = created.id
                break
            except _Transient:
                # The request may have reached Groq: never create a second batch for the same lines.
                found = _find_created(api, rec.token)
                if found is not None:
                    rec.batch_id = found
                    break
                if attempt == API_ATTEMPTS:
                    self.state.drop(rec)
                    raise
                time.sleep(self.bs.poll_interval)
        self.state.save()
        self.say(f"submitted batch {rec.batch_id}: {len(rec.lines)} request(s), model {rec.model}, "
                 f"window {self.bs.completion_window}")

    # -- waiting ----------------------------------------------------------------------------------

    def poll(self, jobs: list[_Record]) -> dict[str, Any]:
        """Each batch's latest state; with wait, only once every one is final (backoff between)."""
        assert self.api is not None
        delay = self.bs.poll_interval
        shown: dict[str, str] = {}
        latest: dict[str, Any] = {}
        while True:
            for rec in jobs:
                if rec.token in latest and latest[rec.token].status in FINAL:
                    continue
                b = self.api.call("checking the batch status", self.api.client.batches.retrieve, rec.batch_id)
                latest[rec.token] = b
                counts = b.request_counts
                text = (f"batch {b.id}: {b.status}"
                        + (f", {counts.completed}/{counts.total} done" if counts and counts.total else "")
                        + (f", {counts.failed} failed" if counts and counts.failed else ""))
                if shown.get(rec.token) != text:
                    self.say(text)
                    shown[rec.token] = text
            if not self.wait or all(b.status in FINAL for b in latest.values()):
                return latest
            time.sleep(delay)
            delay = min(delay * 1.5, self.bs.max_poll_interval)

    # -- ingestion --------------------------------------------------------------------------------

    def ingest(self, rec: _Record, batch: Any) -> list[str]:
        """Judge every line of a final batch; returns the keys worth a second pass."""
        status = batch.status
        if status == "failed":
            self.reject(rec, batch)
            return []
        todo = rec.keys & self.need.keys()
        self.stats.calls += len(rec.lines)
        retry: list[str] = []
        not_run: list[str] = []
        examples: list[str] = []
        valid = 0
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for raw in self.lines(file_id, batch.id):
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                key = obj.get("custom_id") if isinstance(obj, dict) else None
                if key not in todo:
                    continue  # not ours any more (its inputs changed), or seen already
                todo.discard(key)
                req = self.need[key][0]
                verdict, answer, why = self.judge(obj, req, rec)
                if verdict == "ok":
                    assert answer is not None
                    self.accept(key, answer)
                    valid += 1
                elif verdict == "not_run":
                    not_run.append(key)
                else:
                    self.stats.failures += 1
                    retry.append(key)
                    if len(examples) < 3:
                        examples.append(f"{req.component}:{req.slug}: {why}")
        missing = sorted(todo)  # answered by neither file
        if status in ("expired", "cancelled"):
            not_run += missing
            self.note(f"{PROVIDER}: batch {batch.id} {status}: {valid} answer(s) came back and were kept"
                      + (f"; {len(not_run)} request(s) never ran: they go through the live chain" if not_run else ""))
        elif missing:
            retry += missing
            examples.append(f"{len(missing)} line(s) missing from the output")
        self.give_up(not_run)
        if not retry:
            return []
        second = rec.pass_no == 1 and self.bs.second_pass_model
        self.note(f"{PROVIDER}: batch {batch.id}: {len(retry)} line(s) invalid or failed ("
                  + "; ".join(examples) + (f"{'; ...' if len(retry) > len(examples) else ''}): ")
                  + (f"they go to a second batch with {self.bs.second_pass_model}" if second
                     else "they go through the live chain"))
        if second:
            return retry
        self.give_up(retry)
        return []

    def lines(self, file_id: str, batch_id: str) -> Iterator[bytes]:
        """The lines of a batch output/error file, downloaded to disk first (memory stays flat).
        A file Groq no longer has yields nothing: its lines count as missing."""
        import groq

        assert self.api is not None
        api = self.api
        part = self.state_dir / f"download-{file_id}.part"

        def download() -> None:
            with api.client.files.with_streaming_response.content(file_id) as resp:
                resp.stream_to_file(part)

        try:
            try:
                api.call("downloading the batch results", download, passthrough=(groq.NotFoundError,))
            except groq.NotFoundError:
                self.note(f"{PROVIDER}: result file {file_id} of batch {batch_id} is gone from {api.where}")
                return
            with open(part, "rb") as fh:
                for raw in fh:
                    if raw.strip():
                        yield raw
        finally:
            _unlink(part)

    def judge(self, obj: dict, req: LLMRequest, rec: _Record) -> tuple[str, Answer | None, str]:
        """("ok" | "invalid" | "error" | "not_run", answer, why) for one result line, exactly as the
        live chain judges an answer."""
        resp, err = obj.get("response"), obj.get("error")
        if not isinstance(resp, dict):
            code = str(err.get("code") or "") if isinstance(err, dict) else ""
            msg = str(err.get("message") or "") if isinstance(err, dict) else "no response"
            return ("not_run" if code in NOT_RUN else "error"), None, f"{code or 'error'}: {short(msg, 160)}"
        status, body = resp.get("status_code"), resp.get("body")
        if status != 200 or not isinstance(body, dict):
            msg, code, _kind, failed = error_info(body)
            if code in NOT_RUN:
                return "not_run", None, code
            verdict = "invalid" if code in ("json_validate_failed", "tool_use_failed") or failed is not None else "error"
            return verdict, None, f"HTTP {status} {code}: {short(msg, 160)}".replace("  ", " ")
        model = str(body.get("model") or rec.model)
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        used = usage_of(usage.get("prompt_tokens"), usage.get("completion_tokens"))
        self.account(model, used)
        choices = body.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return "error", None, "empty response (no choices)"
        choice = choices[0]
        text = (choice.get("message") or {}).get("content") or ""
        if choice.get("finish_reason") == "length":
            limit = req.params.get("max_tokens")
            return "invalid", None, (f"the answer was cut off at the token limit (finish_reason=length"
                                     f"{f', max_tokens={limit}' if limit else ''})")
        output, errors = check_answer(text, req.schema, req.validators, req.material)
        if errors or output is None:
            self.report.count_rejections(errors)
            return "invalid", None, "; ".join(errors[:2]) + (f" (+{len(errors) - 2} more)" if len(errors) > 2 else "")
        return "ok", Answer(output=output, provider=PROVIDER, model=model, usage=used), ""

    def account(self, model: str, used: dict) -> None:
        pt, ct = used["prompt_tokens"], used["completion_tokens"]
        self.stats.prompt_tokens += pt
        self.stats.completion_tokens += ct
        price = self.settings.price("groq", model)
        if price is None:
            self.stats.unpriced_calls += 1
        else:
            self.stats.cost += (pt * price["input"] + ct * price["output"]) / 1e6 * (1.0 - self.bs.discount)

    def accept(self, key: str, answer: Answer) -> None:
        """Cache first, then every request with this key (SIGKILL-safe, like the live chain)."""
        self.cache.put(key, answer)
        reqs = self.need.pop(key)
        self.report.produced += 1
        self.stats.answers += 1
        self.on_answer(reqs[0], answer)
        for other in reqs[1:]:
            self.report.cache_hits += 1
            self.on_answer(other, replace(answer, from_cache=True))
        self.tick()

    def reject(self, rec: _Record, batch: Any) -> None:
        """Collect the line errors of a batch that failed validation; keep its input file to look at."""
        errors = getattr(getattr(batch, "errors", None), "data", None) or []
        kept = f"rejected-{rec.token}.jsonl"
        try:
            os.replace(self.state_dir / rec.input_name, self.state_dir / kept)
        except FileNotFoundError:
            pass
        where = self.rel(kept)
        self.rejected_ids.append(batch.id)
        for e in errors:
            line = getattr(e, "line", None)
            what = ""
            if isinstance(line, int) and 1 <= line <= len(rec.lines):
                _key, component, slug = rec.lines[line - 1]
                what = f" ({component}:{slug})"
            code = getattr(e, "code", None)
            message = f"{code + ': ' if code else ''}{getattr(e, 'message', None) or 'rejected'}{what}"
            self.rejected.append(Problem(where, message, line if isinstance(line, int) else None,
                                         getattr(e, "param", None)))
        if not errors:
            self.rejected.append(Problem(where, "the input file failed validation (Groq gave no details)"))


# ---- site batch status | cancel -----------------------------------------------------------------


def _when(ts: float | int | None) -> str:
    if not ts:
        return "?"
    return datetime.fromtimestamp(float(ts), timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _describe(rec: _Record) -> str:
    counts = Counter(line[1] for line in rec.lines)
    parts = ", ".join(f"{c} {n}" for c, n in sorted(counts.items()))
    return (f"batch {rec.label}: pass {rec.pass_no}, model {rec.model}, {len(rec.lines)} request(s) ({parts}), "
            f"submitted {_when(rec.created_at)}" + (", cancel requested" if rec.cancel_requested else ""))


def batch_status(state_dir: Path, settings: LLMSettings) -> list[str]:
    """Lines for `site batch status`: each recorded batch and, when Groq answers, its live status."""
    import groq

    state = _State.load(state_dir)
    if not state.records:
        return ["no batch recorded"]
    try:
        api: _Api | None = _Api(settings)
        unknown = ""
    except BatchError as e:
        api, unknown = None, str(e)
    out = []
    try:
        for rec in state.records:
            out.append(_describe(rec))
            if not rec.batch_id:
                out.append("  not created yet: the next `site build --batch` finishes submitting it")
                continue
            if api is None:
                out.append(f"  status unknown: {unknown}")
                continue
            try:
                b = api.call("status", api.client.batches.retrieve, rec.batch_id, attempts=1,
                             passthrough=(groq.NotFoundError,))
            except groq.NotFoundError:
                out.append(f"  not found at {api.where}: the next `site build --batch` submits its requests again")
                continue
            except BatchError as e:
                out.append(f"  status unknown: {e}")
                continue
            c = b.request_counts
            counts = f": {c.completed}/{c.total} completed, {c.failed} failed" if c else ""
            extra = f", expires {_when(b.expires_at)}" if b.status not in FINAL and b.expires_at else ""
            out.append(f"  status {b.status}{counts}{extra}")
    finally:
        if api is not None:
            api.close()
    out.append("`site build --batch` waits for what is running and ingests the answers; `site batch cancel` cancels")
    return out


def cancel_batch(state_dir: Path, settings: LLMSettings) -> str:
    """`site batch cancel`: cancel every recorded batch that is still running. Their records stay,
    marked: a later `site build --batch` ingests what they finished, a plain `site build` no longer
    holds their requests back."""
    import groq

    state = _State.load(state_dir)
    if not state.records:
        return "no batch recorded"
    api = _Api(settings)
    said = []
    try:
        for rec in list(state.records):
            if not rec.batch_id:
                rec.batch_id = _find_created(api, rec.token)
                if not rec.batch_id:
                    state.drop(rec)
                    said.append(f"batch tag {rec.token}: never created; forgotten")
                    continue
            try:
                b = api.call("cancelling", api.client.batches.cancel, rec.batch_id,
                             passthrough=(groq.NotFoundError, groq.BadRequestError))
                said.append(f"batch {rec.batch_id}: {b.status}")
            except groq.NotFoundError:
                state.drop(rec)
                said.append(f"batch {rec.batch_id}: not found at {api.where}; forgotten")
                continue
            except groq.BadRequestError:
                b = api.call("status", api.client.batches.retrieve, rec.batch_id)
                said.append(f"batch {rec.batch_id}: already {b.status}, nothing to cancel")
            rec.cancel_requested = True
            state.save()
    finally:
        api.close()
    if state.records:
        said.append("what the batch finished is ingested by the next `site build --batch`; a plain `site build` "
                    "now generates the rest live")
    return "\n".join(said)


__all__ = ["BatchError", "BatchOutcome", "BatchRejected", "PROVIDER", "STATE_FILE", "batch_status",
           "cancel_batch", "pending_keys", "run_batch"]
