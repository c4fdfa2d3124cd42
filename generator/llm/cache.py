"""The LLM answer cache: diskcache under <root>/.cache/llm, keyed by the content hash (SPEC §3).

Values are JSON text (output, provider, model, usage, stored_at): inspectable, never pickled,
and never containing a host or a key. Only valid, complete answers reach `put`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import diskcache

from .types import Answer

RECORD_VERSION = 1


class AnswerCache:
    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self._cache = diskcache.Cache(str(self.directory))

    def get(self, key: str) -> Answer | None:
        raw = self._cache.get(key)
        if not isinstance(raw, str):
            return None
        try:
            rec = json.loads(raw)
        except ValueError:
            return None
        if not (isinstance(rec, dict) and rec.get("v") == RECORD_VERSION and isinstance(rec.get("output"), dict)):
            return None
        usage = rec.get("usage") if isinstance(rec.get("usage"), dict) else {}
        return Answer(
            output=rec["output"],
            provider=str(rec.get("provider", "")),
            model=str(rec.get("model", "")),
            usage={"prompt_tokens": int(usage.get("prompt_tokens", 0) or 0),
                   "completion_tokens": int(usage.get("completion_tokens", 0) or 0)},
            from_cache=True,
        )

    def put(self, key: str, answer: Answer) -> None:
        rec = {
            "v": RECORD_VERSION,
            "output": answer.output,
            "provider": answer.provider,
            "model": answer.model,
            "usage": {"prompt_tokens": int(answer.usage.get("prompt_tokens", 0) or 0),
                      "completion_tokens": int(answer.usage.get("completion_tokens", 0) or 0)},
            "stored_at": round(time.time(), 3),
        }
        # diskcache commits each set in its own SQLite transaction: durable once set() returns.
        self._cache.set(key, json.dumps(rec, ensure_ascii=False, sort_keys=True))

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def stats(self) -> dict[str, Any]:
        by_provider: dict[str, int] = {}
        by_model: dict[str, int] = {}
        entries = 0
        for key in self._cache.iterkeys():
            entries += 1
            answer = self.get(key)
            if answer is None:
                by_provider["(unreadable)"] = by_provider.get("(unreadable)", 0) + 1
                continue
            by_provider[answer.provider] = by_provider.get(answer.provider, 0) + 1
            label = f"{answer.provider}:{answer.model}"
            by_model[label] = by_model.get(label, 0) + 1
        return {"directory": str(self.directory), "entries": entries, "size_bytes": int(self._cache.volume()),
                "by_provider": dict(sorted(by_provider.items())), "by_model": dict(sorted(by_model.items()))}

    def clear(self) -> int:
        return int(self._cache.clear())

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> "AnswerCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
