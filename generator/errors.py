"""Problems found in a site, and the error classes the CLI maps to exit codes.

Every error the user can cause is one of these classes; anything else is a bug and is allowed
to show its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the input, pinned to where the user can fix it."""

    file: str  # path relative to the site root, POSIX style
    message: str
    line: int | None = None
    field: str | None = None  # dotted path of the offending key, e.g. "properties.density.value"

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        field = f" [{self.field}]" if self.field else ""
        return f"{where}{field}: {self.message}"


class SiteError(Exception):
    """Base of every error the user can cause. `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])

    def __str__(self) -> str:
        head = super().__str__()
        if not self.problems:
            return head
        return head + "\n" + "\n".join(f"  {p}" for p in self.problems)


class InputError(SiteError):
    """Bad input or usage: invalid YAML, schema violations, unknown components, cycles..."""

    exit_code = 2


class BuildFailed(SiteError):
    """Some component or page could not be produced; the rest of the site was built."""

    exit_code = 1


class FrozenStale(SiteError):
    """`--frozen` found LLM components that are stale or missing."""

    exit_code = 3


class SiteLocked(SiteError):
    """Another build holds the site's lock."""

    exit_code = 2
