"""produce(): every request answered from the cache or through the provider chain (SPEC §3, §4).

For each request: the cache first (unless `fresh`); on a miss, each provider of the chain in
turn. On a provider, an answer is validated; an invalid one is retried with every error fed back
(up to `repair_retries`, each retry with another seed and a hotter temperature; a cut-off answer
is asked to be shorter), then the request moves on. The schema and the content rules are in the
user message; the structured-output mode is negotiated per provider (structured.py). A provider
is left at once on connection refused, timeout, missing model, 5xx, 413 and a 429 whose wait
exceeds `max_retry_after`; a short 429 waits and retries the same provider. An unhealthy or
unreachable provider is probed again after `health_retry_after`. Under `strict` the template
tier fills nothing. The accepted answer is stored in the cache and
handed to `on_answer` immediately, so a killed build repeats no paid call. A request nothing can
produce is listed in `report.failed`; the others go on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from .cache import AnswerCache
from .progress import Progress
from .providers import (Completion, InvalidGeneration, ModeRefused, Provider, ProviderUnavailable,
                        RateLimited, build_provider)
from .ratelimit import RateLimiter, RateLimitWaitTooLong, RateWindow
from .repair import answer_problems, attempt_params, cut_off_error, repair_messages
from .report import FREE_PROVIDERS, ProduceReport
from .settings import LLMSettings
from .structured import ModeBook, with_output_rules
from .tiers import save_tiers, tier_log_path
from .types import Answer, LLMRequest, TierRecord

STREAK_LIMIT = 3  # transient failures in a row after which a provider rests until probed again
DEFAULT_MAX_TOKENS_ESTIMATE = 1024

OnAnswer = Callable[[LLMRequest, Answer], None]


class LLMSession:
    """What one build knows across produce() calls (the caller runs one per dependency level):
    provider health (checked once per build while it is good; an unhealthy provider is probed
    again after `health_retry_after`), the structured-output modes, the rate-limit windows (one
    budget for the whole build), and providers or models found unusable. Plain data: valid
    across event loops."""

    def __init__(self, settings: LLMSettings):
        self.settings = settings
        self.health: dict[str, tuple[bool, str, float]] = {}  # name -> (ok, detail, when checked)
        self.modes = ModeBook(settings)
        self.windows: dict[str, RateWindow] = {}
        self.down: dict[str, str] = {}  # "groq" or "ollama:llama3.2" -> why it is skipped
        self.streak: dict[str, int] = {}
        self.notes: list[str] = []

    def window(self, name: str) -> RateWindow:
        if name not in self.windows:
            ps = self.settings.provider(name)
            self.windows[name] = RateWindow(ps.rpm, ps.tpm, ps.period_seconds)
        return self.windows[name]

    def why_down(self, name: str, model: str) -> str | None:
        return self.down.get(name) or self.down.get(f"{name}:{model}")

    def failed(self, name: str, model: str, err: ProviderUnavailable, reason: str) -> None:
        if err.scope == "provider":
            self._down(name, reason)
        elif err.scope == "server":
            self.unhealthy(name, reason)
        elif err.scope == "model":
            self.down.setdefault(f"{name}:{model}", reason)
        elif err.scope == "call":
            self.streak[name] = self.streak.get(name, 0) + 1
            if self.streak[name] >= STREAK_LIMIT:
                self.streak[name] = 0
                self.unhealthy(name, f"{STREAK_LIMIT} failures in a row, last: {reason}")

    def unhealthy(self, name: str, detail: str) -> None:
        """Skip `name` until it is probed again (`health_retry_after` seconds from now)."""
        self.health[name] = (False, detail, time.monotonic())
        wait = self.settings.provider(name).health_retry_after
        self.notes.append(f"{name}: skipped ({detail}); probed again after {wait:g} s")

    def why_unhealthy(self, name: str) -> str | None:
        state = self.health.get(name)
        return f"unhealthy: {state[1]}" if state is not None and not state[0] else None

    def needs_probe(self, name: str) -> bool:
        state = self.health.get(name)
        if state is None:
            return True
        ok, _, when = state
        return not ok and time.monotonic() - when >= self.settings.provider(name).health_retry_after

    def succeeded(self, name: str) -> None:
        self.streak[name] = 0

    def _down(self, name: str, reason: str) -> None:
        if name not in self.down:
            self.down[name] = reason
            self.notes.append(f"{name}: skipped for the rest of the build ({reason})")


def redact(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def estimate_tokens(messages: Sequence[dict], params: dict) -> int:
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    return chars // 4 + int(params.get("max_tokens") or DEFAULT_MAX_TOKENS_ESTIMATE)


class _Run:
    """One produce() call: its providers (HTTP clients bound to this event loop) and counters."""

    def __init__(self, settings: LLMSettings, cache: AnswerCache, on_answer: OnAnswer,
                 progress: Progress | None, session: LLMSession):
        self.settings = settings
        self.cache = cache
        self.on_answer = on_answer
        self.progress = progress
        self.session = session
        self.secrets = settings.secrets()
        self.report = ProduceReport()
        self.providers: dict[str, Provider] = {}
        self.health_tasks: dict[str, asyncio.Task] = {}
        self.semaphores: dict[str, asyncio.Semaphore] = {}
        self.limiters: dict[str, RateLimiter] = {}
        self.inflight: dict[str, asyncio.Future] = {}
        self.notes_seen = len(session.notes)

    # ---- plumbing --------------------------------------------------------------------------

    def _tick(self) -> None:
        for note in self.session.notes[self.notes_seen:]:
            self.report.notes.append(redact(note, self.secrets))
        self.notes_seen = len(self.session.notes)
        if self.progress is not None:
            self.progress.update(self.report)

    def semaphore(self, name: str) -> asyncio.Semaphore:
        if name not in self.semaphores:
            self.semaphores[name] = asyncio.Semaphore(self.settings.provider(name).concurrency)
        return self.semaphores[name]

    def limiter(self, name: str) -> RateLimiter:
        if name not in self.limiters:
            self.limiters[name] = RateLimiter(self.session.window(name))
        return self.limiters[name]

    async def ready(self, name: str) -> Provider:
        """The provider, built on first use and health-checked: once per build while healthy,
        again after `health_retry_after` while not (one probe at a time)."""
        if name in self.session.down:
            raise ProviderUnavailable(self.session.down[name], scope="provider")
        if name not in self.providers:
            self.providers[name] = build_provider(name, self.settings)
        if self.session.needs_probe(name):
            task = self.health_tasks.get(name)
            if task is None or task.done():
                task = self.health_tasks[name] = asyncio.ensure_future(self._probe(name))
            await asyncio.shield(task)
        why = self.session.why_unhealthy(name)
        if why:
            raise ProviderUnavailable(why, scope="request")
        return self.providers[name]

    async def _probe(self, name: str) -> None:
        ok, detail = await self.providers[name].health()
        detail = redact(detail, self.secrets)
        if ok:
            self.session.health[name] = (True, detail, time.monotonic())
        else:
            self.session.unhealthy(name, detail)

    async def aclose(self) -> None:
        for task in self.health_tasks.values():
            if not task.done():
                task.cancel()
        for provider in self.providers.values():
            await provider.aclose()

    # ---- the run ---------------------------------------------------------------------------

    async def run(self, requests: Sequence[LLMRequest]) -> ProduceReport:
        t0 = time.monotonic()
        self.report.total = len(requests)
        if self.progress is not None:
            self.progress.start(len(requests))
        try:
            misses = []
            for req in requests:
                hit = self._cached(req)
                if hit is None:
                    misses.append(req)
                    continue
                self.report.cache_hits += 1
                self.report.answered(hit)
                self.on_answer(req, hit)
                self._tick()
            tasks = [asyncio.ensure_future(self.one(req)) for req in misses]
            try:
                if tasks:
                    await asyncio.gather(*tasks)
            except BaseException:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        finally:
            self.report.elapsed = time.monotonic() - t0
            self._finish_tiers()
            self._tick()
            if self.progress is not None:
                self.progress.stop()
        return self.report

    def _finish_tiers(self) -> None:
        """Report (and log, for `site status`) each provider's mode and the tier of each component."""
        for name, mode in self.session.modes.used().items():
            if self.report.modes.get(name) != mode and name != "template":
                self.report.modes[name] = mode
                self.session.notes.append(self.session.modes.note(name))
        save_tiers(tier_log_path(Path(self.cache.directory)), self.report)

    def _cached(self, req: LLMRequest) -> Answer | None:
        hit = None if req.fresh else self.cache.get(req.key)
        if hit is not None and self.settings.strict and hit.provider == "template":
            return None  # strict: a cached template fill is not model text; ask the models
        return hit

    async def one(self, req: LLMRequest) -> None:
        leader = self.inflight.get(req.key)
        if leader is not None:  # the same key twice in one run: one call, two answers
            answer, reason = await asyncio.shield(leader)
            if answer is not None:
                self.report.cache_hits += 1
                self.report.answered(answer)
                self.on_answer(req, replace(answer, from_cache=True))
            else:
                self.report.failed.append((req, reason))
            self._tick()
            return
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.inflight[req.key] = future
        reasons: list[str] = []
        try:
            for name in self.settings.chain:
                if name == "template" and self.settings.strict:
                    reasons.append("template: not used (strict: model text or nothing)")
                    continue
                try:
                    answer = await self.attempt(name, req)
                except ProviderUnavailable as e:
                    reasons.append(f"{name}: {redact(e.reason, self.secrets)}")
                    self.report.stats(name).fallbacks += 1
                    self._tick()
                    continue
                self.cache.put(req.key, answer)
                self.report.produced += 1
                self.report.stats(name).answers += 1
                self.report.answered(answer)
                self.report.tiers[req.label] = TierRecord(req.key, name, answer.model, tuple(reasons))
                self.on_answer(req, answer)
                future.set_result((answer, ""))
                self._tick()
                return
            reason = "; ".join(reasons) or "the provider chain is empty"
            self.report.tiers[req.label] = TierRecord(req.key, "", "", tuple(reasons))
            self.report.failed.append((req, reason))
            future.set_result((None, reason))
            self._tick()
        finally:
            if not future.done():
                future.cancel()

    async def attempt(self, name: str, req: LLMRequest) -> Answer:
        """An accepted answer from provider `name`, or ProviderUnavailable (move on)."""
        provider = await self.ready(name)
        ps = self.settings.provider(name)
        model = "template" if name == "template" else (req.models.get(name) or ps.model)
        why = self.session.why_down(name, model)
        if why:
            raise ProviderUnavailable(why, scope="provider")
        stats = self.report.stats(name)
        tries = 1 + (self.settings.repair_retries if provider.repairable else 0)
        first = with_output_rules(req.messages, req.schema, req.validators, req.material)
        messages: list[dict] = first
        errors: list[str] = []
        for attempt in range(tries):
            if attempt:
                stats.retries += 1
            params = attempt_params(req.params, attempt, self.settings.repair_temperature_step)
            cut_off = False
            try:
                completion = await self.call(provider, name, req, messages, model, params)
            except InvalidGeneration as e:
                errors, text = list(e.errors), e.text
            else:
                text = completion.text
                if completion.finish_reason == "length":
                    cut_off, errors = True, [cut_off_error(params)]
                else:
                    output, errors = answer_problems(text, req.schema, req.validators, req.material,
                                                     extract=completion.mode == "text")
                    if not errors and output is not None:
                        self.session.succeeded(name)
                        answered_by = "template" if name == "template" else (completion.model or model)
                        return Answer(output=output, provider=name, model=answered_by,
                                      usage=dict(completion.usage), from_cache=False)
                    self.report.count_rejections(errors)
            stats.failures += 1
            messages = repair_messages(first, text, errors, cut_off=cut_off)
        shown = "; ".join(errors[:4]) + (f" (+{len(errors) - 4} more)" if len(errors) > 4 else "")
        raise ProviderUnavailable(f"answer still invalid after {tries} attempt(s): {shown}", scope="request")

    async def call(self, provider: Provider, name: str, req: LLMRequest, messages: list[dict],
                   model: str, params: dict) -> Completion:
        """One completion, within the provider's concurrency and rate limits; short 429s retried;
        a refused structured-output mode stepped down and the same request sent again."""
        ps = self.settings.provider(name)
        stats = self.report.stats(name)
        limiter = self.limiter(name)
        tokens = estimate_tokens(messages, params)
        rate_limited = 0
        while True:
            async with self.semaphore(name):
                try:
                    await limiter.acquire(tokens, max_block=ps.max_retry_after)
                except RateLimitWaitTooLong as e:
                    raise ProviderUnavailable(
                        f"rate limited: asked to wait {e.wait:.1f}s, more than max_retry_after "
                        f"{ps.max_retry_after:g}s", scope="request") from None
                why = self.session.why_down(name, model) or self.session.why_unhealthy(name)
                if why:  # found dead while this one waited
                    raise ProviderUnavailable(why, scope="request")
                stats.calls += 1
                t0 = time.monotonic()
                mode = self.session.modes.mode(name)
                try:
                    completion = await provider.complete(messages, req.schema, params, model,
                                                         name=req.component, offline=req.offline, mode=mode)
                except ModeRefused as e:
                    self._step_down(name, mode, redact(e.reason, self.secrets))
                    continue
                except RateLimited as e:
                    stats.rate_limited += 1
                    wait = e.retry_after
                    if wait is None:  # the server did not say: back off exponentially
                        wait = min(2.0 ** rate_limited * 0.5, max(ps.max_retry_after, 0.5))
                    limiter.window.pause(wait)
                    if wait > ps.max_retry_after or rate_limited >= ps.rate_limit_retries:
                        stats.failures += 1
                        raise ProviderUnavailable(
                            f"{e.reason}; retry-after {wait:.1f}s "
                            + (f"exceeds max_retry_after {ps.max_retry_after:g}s" if wait > ps.max_retry_after
                               else f"after {rate_limited} retries"), scope="request") from None
                    rate_limited += 1
                    stats.retries += 1
                    continue
                except ProviderUnavailable as e:
                    stats.failures += 1
                    self.session.failed(name, model, e, redact(e.reason, self.secrets))
                    raise
                finally:
                    stats.busy_seconds += time.monotonic() - t0
                    self._tick()
            self._account(name, model, completion)
            return completion

    def _step_down(self, name: str, mode: str, reason: str) -> None:
        """A refused mode: the next one for the rest of the build, or leave this provider."""
        stats = self.report.stats(name)
        stats.failures += 1
        first = self.session.modes.mode(name) == mode  # not already stepped down by a concurrent refusal
        lower = self.session.modes.refused(name, mode, reason)
        if lower is None:  # a configured mode, or nothing weaker to try: every request would fail
            err = ProviderUnavailable(f"structured output {mode} refused ({reason})", scope="provider")
            self.session.failed(name, "", err, err.reason)
            raise err
        if first:
            self.session.notes.append(f"{name}: structured output {mode} refused ({reason}); trying {lower}")

    def _account(self, name: str, model: str, completion: Completion) -> None:
        stats = self.report.stats(name)
        pt = int(completion.usage.get("prompt_tokens", 0) or 0)
        ct = int(completion.usage.get("completion_tokens", 0) or 0)
        stats.prompt_tokens += pt
        stats.completion_tokens += ct
        price = self.settings.price(name, completion.model or model) or self.settings.price(name, model)
        if price is not None:
            stats.cost += (pt * price["input"] + ct * price["output"]) / 1e6
        elif name not in FREE_PROVIDERS and not self.settings.provider(name).local:
            stats.unpriced_calls += 1
        self._tick()


async def produce(requests: Sequence[LLMRequest], settings: LLMSettings, cache: AnswerCache,
                  on_answer: OnAnswer, progress: Progress | None = None, *,
                  session: LLMSession | None = None) -> ProduceReport:
    """Answer every request (see the module doc). `session` carries health checks, rate-limit
    budgets and down providers from one call to the next within a build; without it, this call
    is a build of its own."""
    run = _Run(settings, cache, on_answer, progress, session or LLMSession(settings))
    try:
        return await run.run(requests)
    finally:
        await run.aclose()


def produce_sync(requests: Sequence[LLMRequest], settings: LLMSettings, cache: AnswerCache,
                 on_answer: OnAnswer, progress: Progress | None = None, *,
                 session: LLMSession | None = None) -> ProduceReport:
    return asyncio.run(produce(requests, settings, cache, on_answer, progress, session=session))


async def check_health_async(settings: LLMSettings) -> list[tuple[str, bool, str]]:
    secrets = settings.secrets()
    providers = [build_provider(name, settings) for name in settings.chain]
    try:
        results = await asyncio.gather(*(p.health() for p in providers))
    finally:
        for p in providers:
            await p.aclose()
    return [(name, ok, redact(detail, secrets)) for name, (ok, detail) in zip(settings.chain, results)]


def check_health(settings: LLMSettings) -> list[tuple[str, bool, str]]:
    """(provider, ok, detail) for each provider of the chain, for `site status`."""
    return asyncio.run(check_health_async(settings))
