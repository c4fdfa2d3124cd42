"""`site review`: what the site says that changed, for a person to sign off, and whether every
output passes today's validators (so CI can run it).

Lists each output in content/components/ changed since a git ref (default HEAD: the uncommitted
and untracked ones), with its provider, model, the validators it passes or fails, and a unified
diff of its output against the ref's version. Every output of the site is checked against
today's validators; one that fails and is neither pinned nor edited by hand fails the review
(exit 1). Outputs a person kept are reported, not failed: keeping them was that person's call.
"""

from __future__ import annotations

import difflib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import yamlio
from .errors import BuildFailed, InputError

OUTPUTS = "content/components"


def output_errors(site: Any, facts: Any, component: str, slug: str, output: dict) -> list[str]:
    """Today's validators (the component's, with the defaults) on one output; [] = it passes."""
    from .llm.validators import effective_validators, validate_output

    comp, material = site.components.get(component), site.materials.get(slug)
    if comp is None or comp.kind != "llm" or material is None:
        return []  # an output of nothing the site has: the build reports it
    d = comp.definition
    return validate_output(output, d["schema"], effective_validators(d.get("validators"), facts), material.data)


def kept_output_warnings(site: Any, facts: Any) -> list[str]:
    """A warning for each pinned or hand-edited output that fails today's validators (the build
    keeps it, as the person who kept it decided, but says so)."""
    warnings = []
    for (component, slug), out in sorted(site.outputs.items()):
        if not out.kept:
            continue
        errors = output_errors(site, facts, component, slug, out.output)
        if errors:
            how = "pinned" if out.pinned else "edited by hand"
            warnings.append(f"{component}:{slug}: {how}, and fails today's validators: "
                            + "; ".join(f"{getattr(e, 'validator', '?')}: {e}" for e in errors[:3])
                            + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""))
    return warnings


@dataclass
class Reviewed:
    file: str
    change: str  # "changed" | "new" | "removed" | "unchanged"
    provider: str = "-"
    model: str = "-"
    kept: str = ""  # "pinned" | "edited by hand" | ""
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "validator: message"
    diff: list[str] = field(default_factory=list)

    @property
    def fails(self) -> bool:
        return bool(self.failed) and not self.kept


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise InputError("site review needs git, and no `git` command was found") from None


def changed_outputs(root: Path, since: str) -> list[str]:
    """Output files (relative to root) that differ from `since`, untracked ones included."""
    if _git(root, "rev-parse", "--is-inside-work-tree").returncode != 0:
        raise InputError(f"{root} is not in a git repository: site review compares {OUTPUTS}/ "
                         "with the committed history (git init, commit, then review)")
    if _git(root, "rev-parse", "--verify", "--quiet", f"{since}^{{commit}}").returncode != 0:
        raise InputError(f"--since {since!r} is not a commit of this repository")
    diff = _git(root, "diff", "--name-only", "--relative", since, "--", OUTPUTS)
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "--", OUTPUTS)
    for result in (diff, untracked):
        if result.returncode != 0:
            raise InputError(f"git failed: {result.stderr.strip()}")
    names = {*diff.stdout.split("\n"), *untracked.stdout.split("\n")}
    return sorted(n for n in names if n.endswith(".yaml"))


def _previous(root: Path, since: str, rel: str) -> dict | None:
    shown = _git(root, "show", f"{since}:./{rel}")
    if shown.returncode != 0:
        return None  # not in that commit: a new output
    try:
        data = yamlio.parse(shown.stdout, f"{since}:{rel}")
    except InputError:
        return None
    return data if isinstance(data, dict) else None


def _text(record: dict | None) -> list[str]:
    if not record or not isinstance(record.get("output"), dict):
        return []
    return yamlio.dump(record["output"]).splitlines(keepends=True)


def review(root: Path, since: str = "HEAD") -> list[Reviewed]:
    """The changed outputs, then any other output failing today's validators."""
    from .config import load_config
    from .content import load_site
    from .llm.validators import SiteFacts
    from .sources import Sources

    root = root.resolve()
    changed = changed_outputs(root, since)
    site, _ = load_site(root, load_config(root), Sources(root, {}), {})
    facts = SiteFacts.of_site(site)
    by_file = {out.file: out for out in site.outputs.values()}
    found: list[Reviewed] = []
    for rel in changed:
        before = _previous(root, since, rel)
        out = by_file.get(rel)
        if out is None:
            if not (root / rel).exists():
                found.append(Reviewed(rel, "removed", diff=list(difflib.unified_diff(
                    _text(before), [], f"{since}:{rel}", "(removed)"))))
            continue
        found.append(_reviewed(root, site, facts, out, "changed" if before else "new", before, since))
    listed = {r.file for r in found}
    for out in sorted(by_file.values(), key=lambda o: o.file):
        if out.file not in listed and output_errors(site, facts, out.component, out.slug, out.output):
            found.append(_reviewed(root, site, facts, out, "unchanged", None, since))
    return found


def _reviewed(root: Path, site: Any, facts: Any, out: Any, change: str, before: dict | None,
              since: str) -> Reviewed:
    from .llm.validators import effective_validators

    record = yamlio.parse((root / out.file).read_text(encoding="utf-8"), out.file) or {}
    errors = output_errors(site, facts, out.component, out.slug, out.output)
    comp = site.components.get(out.component)
    names = ["schema"] + [s["type"] for s in effective_validators(comp.definition.get("validators"))] \
        if comp is not None and comp.kind == "llm" else []
    failed_names = {getattr(e, "validator", "") for e in errors}
    item = Reviewed(out.file, change, str(record.get("provider", "-")), str(record.get("model", "-")),
                    "pinned" if out.pinned else "edited by hand" if out.hand_edited else "",
                    passed=[n for n in dict.fromkeys(names) if n not in failed_names],
                    failed=[f"{getattr(e, 'validator', '?')}: {e}" for e in errors])
    if change != "unchanged":
        item.diff = list(difflib.unified_diff(_text(before), _text(record), f"{since}:{out.file}",
                                              f"{out.file} (now)"))
    return item


def run_review(root: Path, since: str, echo: Callable[[str], None]) -> int:
    items = review(root, since)
    changed = [r for r in items if r.change != "unchanged"]
    echo(f"{len(changed)} output(s) in {OUTPUTS}/ changed since {since}")
    for r in items:
        kept = f", kept: {r.kept}" if r.kept else ""
        echo(f"\n{r.file}  ({r.change}{kept})  provider {r.provider}, model {r.model}")
        if r.change != "removed":
            echo(f"  validators passed: {', '.join(r.passed) or '-'}")
        for failure in r.failed:
            echo(f"  FAILED {failure}")
        for line in r.diff:
            echo("  " + line.rstrip("\n"))
    failing = [r for r in items if r.fails]
    if failing:
        raise BuildFailed(f"{len(failing)} output(s) fail today's validators and are neither pinned nor "
                          "edited by hand: regenerate them (`site regen`) or fix and keep them")
    kept_failing = sum(1 for r in items if r.failed)
    echo(f"\nreview: every generated output passes today's validators"
         + (f" ({kept_failing} kept output(s) do not: a person kept them)" if kept_failing else ""))
    return 0
