"""The `site` command: parses flags, calls one function, maps error classes to exit codes."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import click

from .errors import SiteError

root_option = click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                           show_default=True, help="The site's folder.")


def _chain(value: str | None) -> tuple[str, ...] | None:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if value else None


def _run(fn, *args, **kwargs):
    """Call one command function; a SiteError becomes its message and exit code, never a traceback."""
    try:
        return fn(*args, **kwargs)
    except SiteError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def entry() -> None:
    """The console script: `main`, then, after a build, a quick exit. The build's data stays
    referenced (in `kept`) until the process ends without freeing it object by object, which
    takes a third of a second at 10,000 materials; other commands exit normally."""
    kept: list = []
    try:
        main(obj=kept)
    except SystemExit as exc:
        if kept and (exc.code is None or isinstance(exc.code, int)):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code or 0)
        raise


def _kept() -> list | None:
    """Where a build leaves its report when the console script runs it (None in tests).

    The console script then exits without a cycle collection: the build pauses the collector,
    so every object it made is still in the youngest generation, and the collection that
    re-enabling it starts would walk them all (0.2-0.8 s at 10,000 materials) just before
    the process ends."""
    obj = click.get_current_context().obj
    if not isinstance(obj, list):
        return None
    gc.disable()
    return obj


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="site-generator", prog_name="site")
def main() -> None:
    """A static-site generator for data-driven sites mixing LLM-written and template-rendered components."""


@main.command()
@root_option
@click.option("--frozen", is_flag=True, help="Make no LLM call; fail (exit 3) listing every stale LLM component.")
@click.option("--chain", help="Provider chain for this run, e.g. 'groq,template' (overrides site.yaml and SITE_LLM_CHAIN).")
@click.option("--base-url", help="Override site.yaml's base_url (preview deployments).")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None,
              help="Concurrent LLM requests per provider for this run (default: each provider's `concurrency`).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes loading, keying and rendering materials (default: one per core "
                   "when many materials have work to do).")
@click.option("--batch", is_flag=True, help="Generate stale LLM components through the Groq Batch API.")
@click.option("--no-wait", is_flag=True, help="With --batch: submit and exit; a later `site build --batch` ingests.")
@click.option("--strict", is_flag=True,
              help="Model text or nothing: a component no model could write fails (exit 1) instead of "
                   "being filled by the template tier; so does an output the template tier wrote earlier.")
@click.option("--quiet", "-q", is_flag=True, help="Only print problems.")
def build(root: Path, frozen: bool, chain: str | None, base_url: str | None, jobs: int | None,
          workers: int | None, batch: bool, no_wait: bool, strict: bool, quiet: bool) -> None:
    """Build the site into its output folder (incremental)."""
    from .commands import run_build

    if frozen and batch:
        raise click.UsageError("--frozen makes no LLM call; it cannot be combined with --batch")
    if no_wait and not batch:
        raise click.UsageError("--no-wait goes with --batch")
    sys.exit(_run(run_build, root, frozen=frozen, chain=_chain(chain), base_url=base_url, quiet=quiet,
                  batch=batch, no_wait=no_wait, jobs=jobs, workers=workers, strict=strict, keep=_kept()))


@main.command()
@root_option
@click.option("--component", required=True, help="The LLM component to regenerate.")
@click.option("--material", "materials", multiple=True, help="Only these material slugs (repeatable).")
@click.option("--category", help="Only materials of this category.")
@click.option("--force", is_flag=True, help="Also overwrite hand-edited or pinned outputs.")
@click.option("--chain", help="Provider chain for this run, e.g. 'groq,template'.")
@click.option("--batch", is_flag=True, help="Regenerate through the Groq Batch API.")
@click.option("--no-wait", is_flag=True, help="With --batch: submit and exit.")
@click.option("--quiet", "-q", is_flag=True)
def regen(root: Path, component: str, materials: tuple[str, ...], category: str | None, force: bool,
          chain: str | None, batch: bool, no_wait: bool, quiet: bool) -> None:
    """Regenerate LLM outputs even if fresh (a fresh sample), then rebuild what depends on them."""
    from .commands import run_regen

    if no_wait and not batch:
        raise click.UsageError("--no-wait goes with --batch")
    sys.exit(_run(run_regen, root, component=component, materials=materials, category=category, force=force,
                  chain=_chain(chain), quiet=quiet, batch=batch, no_wait=no_wait, keep=_kept()))


@main.command()
@root_option
@click.option("--chain", help="Provider chain to health-check.")
@click.option("--no-health", is_flag=True, help="Skip the provider health checks.")
def status(root: Path, chain: str | None, no_health: bool) -> None:
    """What is stale and why, what a build would spend, and provider health."""
    from .commands import run_status

    sys.exit(_run(run_status, root, chain=_chain(chain), health=not no_health))


@main.command()
@root_option
@click.option("--since", default="HEAD", show_default=True,
              help="Git ref to compare with (default: the last commit, so uncommitted and untracked outputs).")
def review(root: Path, since: str) -> None:
    """List the outputs changed since a git ref, with provider, model, validators and a diff;
    exit 1 if an output that is neither pinned nor edited by hand fails today's validators."""
    from .commands import run_review

    sys.exit(_run(run_review, root, since=since))


@main.command()
@root_option
@click.argument("component")
@click.argument("slug")
def prompt(root: Path, component: str, slug: str) -> None:
    """Print the exact messages a build sends for COMPONENT of material SLUG."""
    from .commands import run_prompt

    sys.exit(_run(run_prompt, root, component=component, slug=slug))


@main.command()
@root_option
@click.option("--base-url", help="The base URL the site was built with, if overridden.")
def check(root: Path, base_url: str | None) -> None:
    """Validate the inputs and the built site: links, sitemap, meta tags, JSON-LD."""
    from .commands import run_check

    sys.exit(_run(run_check, root, base_url=base_url))


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Scaffold a new working site in DIRECTORY."""
    from .commands import run_init

    sys.exit(_run(run_init, directory))


@main.command()
@root_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default 8000, or the next free one).")
@click.option("--frozen", is_flag=True, help="Never call a model while watching.")
@click.option("--chain", help="Provider chain while watching.")
def watch(root: Path, host: str, port: int | None, frozen: bool, chain: str | None) -> None:
    """Build, serve with live reload, and rebuild on every change."""
    from .watch import run_watch

    _run(run_watch, root.resolve(), host, port if port is not None else 8000, port is not None, frozen, _chain(chain))


@main.command()
@root_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default 8000, or the next free one).")
def serve(root: Path, host: str, port: int | None) -> None:
    """Serve the built site as a static host would."""
    from .commands import output_dir
    from .devserver import run_serve

    _run(run_serve, _run(output_dir, root), host, port if port is not None else 8000, port is not None)


@main.group()
def batch() -> None:
    """Groq Batch API jobs of this site."""


@batch.command("status")
@root_option
def batch_status(root: Path) -> None:
    """The recorded batch: status and request counts."""
    from .commands import run_batch_status

    sys.exit(_run(run_batch_status, root))


@batch.command("cancel")
@root_option
def batch_cancel(root: Path) -> None:
    """Cancel the recorded batch (its finished answers are still ingested by the next --batch build)."""
    from .commands import run_batch_cancel

    sys.exit(_run(run_batch_cancel, root))


@main.group()
def cache() -> None:
    """The LLM response cache."""


@cache.command("stats")
@root_option
def cache_stats(root: Path) -> None:
    """Entries, size and providers of the LLM cache."""
    from .commands import run_cache_stats

    sys.exit(_run(run_cache_stats, root))


@cache.command("clear")
@root_option
@click.confirmation_option(prompt="Delete every cached LLM answer?")
def cache_clear(root: Path) -> None:
    """Delete every cached LLM answer (outputs in content/ are kept)."""
    from .commands import run_cache_clear

    sys.exit(_run(run_cache_clear, root))
