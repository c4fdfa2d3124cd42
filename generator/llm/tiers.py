"""The tier log: which tier of the chain wrote each LLM component and why earlier tiers were
left, and the structured-output mode each provider used, kept in `.cache/llm-tiers.json` for
`site status`. Written atomically at the end of each produce() run; never holds a secret (the
reasons are redacted before they reach the report)."""

from __future__ import annotations

import json
from pathlib import Path

from .report import ProduceReport
from .types import TierRecord

TIER_LOG = "llm-tiers.json"
VERSION = 1


def tier_log_path(cache_directory: Path) -> Path:
    """Next to the answer cache (`.cache/llm` -> `.cache/llm-tiers.json`)."""
    return Path(cache_directory).parent / TIER_LOG


def load_tiers(path: Path) -> tuple[dict[str, TierRecord], dict[str, str]]:
    """(label -> record, provider -> mode); empty when there is no readable log."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, {}
    if not isinstance(data, dict) or data.get("v") != VERSION:
        return {}, {}
    records = {}
    for label, rec in (data.get("components") or {}).items():
        if isinstance(rec, dict):
            records[label] = TierRecord(key=str(rec.get("key", "")), provider=str(rec.get("provider", "")),
                                        model=str(rec.get("model", "")),
                                        left=tuple(str(x) for x in rec.get("left") or ()))
    modes = {str(k): str(v) for k, v in (data.get("modes") or {}).items()}
    return records, modes


def save_tiers(path: Path, report: ProduceReport) -> None:
    """Merge this run's records and modes into the log."""
    if not report.tiers and not report.modes:
        return
    from ..writer import atomic_write

    records, modes = load_tiers(path)
    records.update(report.tiers)
    modes.update(report.modes)
    data = {"v": VERSION, "modes": modes,
            "components": {label: {"key": r.key, "provider": r.provider, "model": r.model, "left": list(r.left)}
                           for label, r in sorted(records.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8"))
