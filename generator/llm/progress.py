"""A rich progress bar for LLM generation: done/total, ETA, cache hits, calls per provider,
tokens and tokens/s. Silent when disabled or when the console is not a terminal."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import ProduceReport


class Progress:
    def __init__(self, *, enabled: bool = True, console: Any = None, description: str = "LLM components"):
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True)
        self.enabled = bool(enabled) and self.console.is_terminal
        self.description = description
        self._bar: Any = None
        self._task: Any = None
        self._t0 = 0.0

    def start(self, total: int) -> None:
        if not self.enabled or self._bar is not None:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._t0 = time.monotonic()
        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("eta"), TimeRemainingColumn(), TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
            console=self.console, transient=False, refresh_per_second=4,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=total, info="")

    def update(self, report: "ProduceReport") -> None:
        if self._bar is None:
            return
        elapsed = max(1e-6, time.monotonic() - self._t0)
        calls = " ".join(f"{name} {s.calls}" for name, s in report.providers.items() if s.calls)
        tokens = report.prompt_tokens + report.completion_tokens
        info = (f"cache {report.cache_hits} · calls {calls or 0} · {tokens:,} tok · "
                f"{report.completion_tokens / elapsed:.0f} tok/s")
        if report.failed:
            info += f" · [red]{len(report.failed)} failed[/red]"
        self._bar.update(self._task, completed=report.done, info=info)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
