"""What a produce() run did: per provider calls, tokens, retries, fallbacks, failures, 429s and
estimated cost; cache hits; the requests nothing could produce. Never holds a secret."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .types import Answer, LLMRequest, TierRecord

FREE_PROVIDERS = ("ollama", "template")  # local: cost 0 unless a price says otherwise (so is openai on loopback)
TIER_LINES = 20  # components listed on the terminal with their tier reasons; `site status` lists all

SUMMARY_COLUMNS = ("provider", "calls", "answers", "tokens in", "tokens out", "retries", "429s",
                   "fallbacks", "failures", "est. cost")


@dataclass
class ProviderStats:
    calls: int = 0  # requests sent (including repair retries and 429 retries)
    answers: int = 0  # accepted answers
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0  # repair retries + waits after a short 429
    rate_limited: int = 0  # 429s received
    fallbacks: int = 0  # requests that moved on from this provider to the next
    failures: int = 0  # failed calls and rejected answers
    cost: float = 0.0  # USD, from the price table (priced calls only)
    unpriced_calls: int = 0  # calls whose model has no price in the table
    busy_seconds: float = 0.0  # time spent inside calls

    def merge(self, other: "ProviderStats") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class ProduceReport:
    total: int = 0  # requests given
    cache_hits: int = 0
    produced: int = 0  # answered by a provider (stored in the cache)
    providers: dict[str, ProviderStats] = field(default_factory=dict)
    failed: list[tuple[LLMRequest, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "ollama skipped: not reachable at ..."
    elapsed: float = 0.0  # seconds
    rejections: dict[str, int] = field(default_factory=dict)  # validator -> answers it rejected

    def count_rejections(self, errors: list[str]) -> None:
        """One rejected answer: each validator that rejected it counts once."""
        from .validators import rejected_by

        for name in rejected_by(errors):
            self.rejections[name] = self.rejections.get(name, 0) + 1

    def rejection_summary(self) -> str:
        """"grounded_numbers 12, plain_text 3" (most first), or "" when nothing was rejected."""
        return rejection_summary(self.rejections)
    by_tier: dict[str, int] = field(default_factory=dict)  # provider -> answers handed over (cache hits too)
    tiers: dict[str, TierRecord] = field(default_factory=dict)  # label -> record, for this run's calls
    modes: dict[str, str] = field(default_factory=dict)  # provider -> structured-output mode used

    def answered(self, answer: Answer) -> None:
        self.by_tier[answer.provider] = self.by_tier.get(answer.provider, 0) + 1

    @property
    def model_answers(self) -> int:
        return sum(n for p, n in self.by_tier.items() if p != "template")

    @property
    def template_fills(self) -> int:
        return self.by_tier.get("template", 0)

    def tier_lines(self, limit: int | None = TIER_LINES) -> list[str]:
        """One line per component not written by its first tier: who wrote it, why the others
        were left (failed components are listed by the caller with their reasons)."""
        shown = [f"{label}: {rec.describe()}" for label, rec in sorted(self.tiers.items())
                 if rec.provider and (rec.left or rec.provider == "template")]
        if limit is not None and len(shown) > limit:
            return shown[:limit] + [f"... and {len(shown) - limit} more (`site status` lists them all)"]
        return shown

    def stats(self, provider: str) -> ProviderStats:
        if provider not in self.providers:
            self.providers[provider] = ProviderStats()
        return self.providers[provider]

    @property
    def done(self) -> int:
        return self.cache_hits + self.produced + len(self.failed)

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.providers.values())

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.providers.values())

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.providers.values())

    @property
    def cost(self) -> float:
        return sum(s.cost for s in self.providers.values())

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.elapsed if self.elapsed > 0 else 0.0

    def merge(self, other: "ProduceReport") -> "ProduceReport":
        """Add another run's figures (the caller runs produce() once per dependency level)."""
        self.total += other.total
        self.cache_hits += other.cache_hits
        self.produced += other.produced
        for name, s in other.providers.items():
            self.stats(name).merge(s)
        self.failed.extend(other.failed)
        self.notes.extend(n for n in other.notes if n not in self.notes)
        self.elapsed += other.elapsed
        for name, n in other.rejections.items():
            self.rejections[name] = self.rejections.get(name, 0) + n
        for provider, n in other.by_tier.items():
            self.by_tier[provider] = self.by_tier.get(provider, 0) + n
        self.tiers.update(other.tiers)
        self.modes.update(other.modes)
        return self

    # ---- presentation ----------------------------------------------------------------------

    @staticmethod
    def summary_columns() -> tuple[str, ...]:
        return SUMMARY_COLUMNS

    def summary_rows(self) -> list[tuple[str, ...]]:
        """One row per provider used, then `cache` and `total`; columns: summary_columns()."""
        rows = []
        for name, s in self.providers.items():
            rows.append((name, str(s.calls), str(s.answers), f"{s.prompt_tokens:,}", f"{s.completion_tokens:,}",
                         str(s.retries), str(s.rate_limited), str(s.fallbacks), str(s.failures),
                         _cost(name, s)))
        rows.append(("cache", "0", str(self.cache_hits), "0", "0", "0", "0", "0", "0", "$0"))
        unpriced = any(s.unpriced_calls for s in self.providers.values())
        rows.append(("total", str(self.calls), str(self.cache_hits + self.produced), f"{self.prompt_tokens:,}",
                     f"{self.completion_tokens:,}", str(sum(s.retries for s in self.providers.values())),
                     str(sum(s.rate_limited for s in self.providers.values())),
                     str(sum(s.fallbacks for s in self.providers.values())),
                     str(sum(s.failures for s in self.providers.values())),
                     f"${self.cost:.4f}" + ("+?" if unpriced else "")))
        return rows

    def summary_table(self, title: str = "LLM components") -> Any:
        """The summary as a rich Table."""
        from rich.table import Table

        table = Table(title=title)
        for i, col in enumerate(SUMMARY_COLUMNS):
            table.add_column(col, justify="left" if i == 0 else "right")
        for row in self.summary_rows():
            table.add_row(*row)
        return table

    def as_dict(self) -> dict[str, Any]:
        """JSON-able figures (for --json output or logs)."""
        return {
            "total": self.total, "cache_hits": self.cache_hits, "produced": self.produced,
            "failed": [{"component": r.component, "slug": r.slug, "key": r.key, "reason": why}
                       for r, why in self.failed],
            "providers": {n: dict(vars(s)) for n, s in self.providers.items()},
            "notes": list(self.notes), "rejections": dict(self.rejections),
            "elapsed": round(self.elapsed, 3), "cost_usd": round(self.cost, 6),
            "model_answers": self.model_answers, "template_fills": self.template_fills,
            "modes": dict(self.modes),
            "tiers": {label: {"provider": r.provider, "model": r.model, "left": list(r.left)}
                      for label, r in sorted(self.tiers.items())},
        }


REJECTIONS_FILE = "rejections.json"  # in .cache/: the last build that called a model, for `site status`


def save_rejections(cache_dir: Path, counts: dict[str, int]) -> None:
    from ..writer import atomic_write

    atomic_write(cache_dir / REJECTIONS_FILE, json.dumps(counts, sort_keys=True).encode("utf-8"))


def load_rejections(cache_dir: Path) -> dict[str, int] | None:
    """The counts the last build that called a model saved, or None if none did (or unreadable)."""
    try:
        data = json.loads((cache_dir / REJECTIONS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {str(k): v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}


def rejection_summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _cost(name: str, s: ProviderStats) -> str:
    if s.unpriced_calls and not s.cost:
        return "—"
    text = f"${s.cost:.4f}"
    return text + ("+?" if s.unpriced_calls else "")
