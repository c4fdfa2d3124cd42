"""What each `site` command does, as plain functions returning an exit code.

The CLI maps flags to these; tests and `site watch` can call them too. Output goes through
`click.echo` so it is plain text when not on a terminal.
"""

from __future__ import annotations

from pathlib import Path

import click

from .errors import BuildFailed, FrozenStale, InputError


def _say(message: str) -> None:
    click.echo(message, err=True)


def output_dir(root: Path) -> Path:
    from .config import load_config

    root = root.resolve()
    return root / load_config(root).output_dir


def run_build(root: Path, *, frozen: bool = False, chain=None, base_url=None, quiet=False, regen=None,
              batch: bool = False, no_wait: bool = False, jobs: int | None = None,
              workers: int | None = None, strict: bool = False, keep: list | None = None) -> int:
    """`keep`: where to leave the build's report (and the data it retains) for a caller that
    exits right after (cli.entry). `strict` (or `llm.strict`): a template-tier fill is a failure."""
    from .build import BuildOptions, build

    options = BuildOptions(frozen=frozen, chain=chain, base_url=base_url, quiet=quiet, regen=regen,
                           progress=not quiet, batch=batch, no_wait=no_wait, jobs=jobs, workers=workers,
                           strict=strict)
    try:
        report = build(root, options, say=_say)
    except FrozenStale as exc:  # the site was still built: say what happened, then fail
        if keep is not None:
            keep.append(exc.report)
        print_report(exc.report, quiet=True)
        raise
    if keep is not None:
        keep.append(report)
    if strict or _llm_settings(root.resolve()).strict:
        from .status import template_filled

        failed = {":".join(f.split(":", 2)[:2]) for f in report.failures}
        report.failures.extend(f"{label}: written by the template tier in an earlier build (strict); "
                               f"`site regen --component {label.split(':')[0]}` asks a model again"
                               for label in template_filled(root.resolve()) if label not in failed)
    print_report(report, quiet)
    if report.failures:
        raise BuildFailed(f"{len(report.failures)} component(s) or page(s) failed; the rest was built",
                          [])
    return 0


def run_regen(root: Path, *, component: str, materials=(), category=None, force=False, chain=None,
              quiet=False, batch=False, no_wait=False, keep: list | None = None) -> int:
    from .build import Regen

    return run_build(root, chain=chain, quiet=quiet, batch=batch, no_wait=no_wait, keep=keep,
                     regen=Regen(component=component, materials=tuple(materials), category=category, force=force))


def _llm_settings(root: Path):
    from os import environ

    from .config import load_config
    from .llm import LLMSettings

    return LLMSettings.from_config(load_config(root).llm, environ)


def run_batch_status(root: Path) -> int:
    from .llm.batch import batch_status

    root = root.resolve()
    for line in batch_status(root / ".cache" / "batch", _llm_settings(root)):
        click.echo(line)
    return 0


def run_batch_cancel(root: Path) -> int:
    from .llm.batch import cancel_batch

    root = root.resolve()
    click.echo(cancel_batch(root / ".cache" / "batch", _llm_settings(root)))
    return 0


def print_report(report, quiet: bool) -> None:
    for warning in report.warnings:
        if not quiet or "stale but kept" in warning:
            click.secho(f"warning: {warning}", fg="yellow", err=True)
    for failure in report.failures:
        click.secho(f"failed: {failure}", fg="red", err=True)
    if report.llm is not None and not quiet:
        from rich.console import Console

        for note in report.llm.notes:
            click.echo(f"note: {note}", err=True)
        for line in report.llm.tier_lines():
            click.echo(f"tier: {line}", err=True)
        console = Console(stderr=True)
        if not console.is_terminal:
            console.width = 120
        console.print(report.llm.summary_table())
        if report.llm.rejections:
            click.echo(f"rejected answers by validator: {report.llm.rejection_summary()}", err=True)
    if quiet:
        return
    if report.noop:
        click.echo(f"nothing to do: the site is up to date ({report.elapsed * 1000:.0f} ms)")
        return
    parts = [f"{len(report.rendered)} rendered ({report.unchanged} unchanged)", f"{len(report.written)} written",
             f"{len(report.removed)} removed"]
    if report.produced:
        llm = report.llm
        split = f" ({llm.model_answers} model answers, {llm.template_fills} template fills)" if llm else ""
        parts.append(f"{len(report.produced)} LLM outputs stored{split}")
    if report.llm is not None:
        parts.append(f"{report.llm.calls} LLM calls, {report.llm.prompt_tokens + report.llm.completion_tokens:,} tokens")
    if report.stale_llm:
        parts.append(f"{len(report.stale_llm)} LLM components stale")
    if report.failures:
        parts.append(f"{len(report.failures)} failed")
    click.echo(f"built {report.out_dir.name}/ in {report.elapsed:.2f} s: " + ", ".join(parts))


def run_status(root: Path, *, chain=None, health: bool = True) -> int:
    from .status import site_status

    site_status(root.resolve(), chain=chain, health=health, echo=click.echo)
    return 0


def run_review(root: Path, *, since: str = "HEAD") -> int:
    from .review import run_review as review

    return review(root.resolve(), since, click.echo)


def run_prompt(root: Path, *, component: str, slug: str) -> int:
    from .status import site_prompt

    site_prompt(root.resolve(), component, slug, echo=click.echo)
    return 0


def run_check(root: Path, *, base_url=None) -> int:
    from .check import check_built_site
    from .status import load_for_check

    root = root.resolve()
    config = load_for_check(root, base_url)
    out = root / config.output_dir
    if not (out / "index.html").is_file():
        raise InputError(f"{config.output_dir}/ has no index.html: run `site build` first")
    problems = check_built_site(out, config.base_url)
    for p in problems:
        click.echo(f"{config.output_dir}/{p}")
    if problems:
        raise BuildFailed(f"site check found {len(problems)} problem(s)")
    click.echo(f"site check: {config.output_dir}/ is fine")
    return 0


def run_init(directory: Path) -> int:
    from .scaffold import scaffold

    created = scaffold(directory)
    click.echo(f"created a new site in {directory} ({len(created)} files). Next:\n"
               f"  cd {directory} && site build && site serve")
    return 0


def run_cache_stats(root: Path) -> int:
    from .llm import AnswerCache

    cache = AnswerCache(root.resolve() / ".cache" / "llm")
    try:
        stats = cache.stats()
    finally:
        cache.close()
    for key, value in stats.items():
        click.echo(f"{key}: {value}")
    return 0


def run_cache_clear(root: Path) -> int:
    from .llm import AnswerCache

    cache = AnswerCache(root.resolve() / ".cache" / "llm")
    try:
        removed = cache.clear()
    finally:
        cache.close()
    click.echo(f"removed {removed} cached answer(s)")
    return 0
