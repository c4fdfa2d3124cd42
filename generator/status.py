"""`site status`: what is stale and why, what a build would spend, and provider health.

Reads the same graph as `site build` but produces and writes nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from .build import CACHE_DIR
from .config import SiteConfig, load_config
from .content import Site, load_site
from .graph import GraphBuilder
from .render import Renderer
from .sources import Sources
from .state import load_memo, load_state


def _load(root: Path, base_url: str | None = None) -> tuple[Site, Renderer, object]:
    state = load_state(root / CACHE_DIR)
    config = load_config(root).with_base_url(base_url)
    sources = Sources(root, state.files, extra=(config.material_schema,) if config.material_schema else ())
    memo = load_memo(root / CACHE_DIR, state)
    site, _ = load_site(root, config, sources, memo.parse_cache)
    renderer = Renderer(site)
    renderer.check_templates(renderer.unchecked_templates())
    out_dir = root / config.output_dir
    graph = GraphBuilder(site, renderer, state.nodes, memo, lambda rel: (out_dir / rel).is_file()).build()
    return site, renderer, graph


_PROVIDER_LINE = re.compile(r"^provider: *['\"]?([A-Za-z0-9_-]+)", re.M)


def _written_by(path: Path) -> str | None:
    """The `provider:` of an output file, without parsing it all."""
    try:
        m = _PROVIDER_LINE.search(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    return m.group(1) if m else None


def template_filled(root: Path) -> list[str]:
    """"component:slug" of every output in content/components/ the template tier wrote and
    nobody has edited or pinned since (what `--strict` refuses)."""
    from . import yamlio
    from .hashing import output_sha

    found = []
    for path in sorted((root / "content" / "components").glob("*/*.yaml")):
        if _written_by(path) != "template":
            continue
        try:
            record = yamlio.parse(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError, yamlio.YamlSyntaxError):
            continue
        if not isinstance(record, dict) or record.get("pinned") is True:
            continue
        if record.get("output_sha256") != output_sha(record.get("output")):
            continue  # edited by hand: a person's text now
        found.append(f"{path.parent.name}:{path.stem}")
    return found


def _tier_section(root: Path, site: Site, llm_nodes: list, echo: Callable[[str], None]) -> dict[str, str]:
    """Per provider, how many outputs it wrote; per component not written by the chain's first
    tier (or not written at all), who wrote it and why the earlier tiers were left."""
    from .llm.tiers import load_tiers, tier_log_path

    records, modes = load_tiers(tier_log_path(root / CACHE_DIR / "llm"))
    counts: dict[str, int] = {}
    lines = []
    unrecorded = 0
    for node in sorted(llm_nodes, key=lambda n: (n.slug, n.component)):
        out = site.outputs.get((node.component, node.slug))
        provider = _written_by(root / out.file) if out is not None else None
        if provider:
            counts[provider] = counts.get(provider, 0) + 1
        rec = records.get(f"{node.component}/{node.slug}")
        if rec is not None and rec.key != node.key and rec.provider:
            rec = None  # about an older version of this component
        why = "; ".join(rec.left) if rec is not None else ""
        if rec is not None and not rec.provider:
            lines.append(f"  {node.component:<12} {node.slug:<28} {'(none)':<10} {why}")
        elif provider and why:
            lines.append(f"  {node.component:<12} {node.slug:<28} {provider:<10} {why}")
        elif provider == "template":
            unrecorded += 1
    if counts:
        echo("LLM outputs by tier: " + ", ".join(f"{p} {n}" for p, n in sorted(counts.items())))
    for line in lines:
        echo(line)
    if unrecorded:
        echo(f"  {unrecorded} written by the template tier in a build that recorded no reasons")
    return modes


def load_for_check(root: Path, base_url: str | None) -> SiteConfig:
    """Validate every input (exit 2 on problems) and return the effective config."""
    site, _, _ = _load(root, base_url)
    return site.config


def site_status(root: Path, chain: tuple[str, ...] | None, health: bool, echo: Callable[[str], None]) -> None:
    site, renderer, graph = _load(root)
    llm_nodes = [n for n in graph.components.values() if n.kind == "llm"]
    stale = [n for n in llm_nodes if n.status != "fresh"]
    echo(f"{len(site.materials)} materials, {len(site.components)} components, {len(site.pages)} pages")
    echo(f"LLM components: {len(llm_nodes) - len(stale)} fresh, {len(stale)} not fresh")
    for node in sorted(stale, key=lambda n: (n.slug, n.component)):
        echo(f"  {node.component:<12} {node.slug:<28} {node.status:<8} {'; '.join(node.reasons)}")
    from .llm.report import load_rejections, rejection_summary

    rejections = load_rejections(root / CACHE_DIR)
    if rejections is not None:
        echo(f"Answers rejected in the last build that called a model: "
             f"{rejection_summary(rejections) or 'none'}")
    modes = _tier_section(root, site, llm_nodes, echo)
    pages = graph.stale_outputs()
    echo(f"Output files to render: {len(pages)} of {len(graph.outputs)}")
    for node in pages[:50]:
        echo(f"  {node.outputs[0]:<48} {'; '.join(node.reasons)}")
    if len(pages) > 50:
        echo(f"  ... and {len(pages) - 50} more")
    to_call = [n for n in stale if n.status in ("stale", "missing")]
    if to_call:
        from os import environ

        from .llm import AnswerCache, LLMSettings

        cache = AnswerCache(root / CACHE_DIR / "llm")
        try:
            hits = sum(1 for n in to_call if cache.get(n.key) is not None)
        finally:
            cache.close()
        settings = LLMSettings.from_config(site.config.llm, environ, list(chain) if chain else None)
        tokens = 0
        for n in to_call:
            component = site.components[n.component]
            messages = renderer.messages(component, site.materials[n.slug],
                                         site.dependency_outputs(component, n.slug))
            max_tokens = component.definition.get("params", {}).get("max_tokens", 400)
            tokens += sum(len(m["content"]) for m in messages) // 4 + max_tokens
        echo(f"A build would answer {hits} from the cache and make about {len(to_call) - hits} call(s), "
             f"up to ~{tokens:,} tokens (chain: {', '.join(settings.chain)})")
    if health:
        from os import environ

        from .llm import LLMSettings, check_health

        settings = LLMSettings.from_config(site.config.llm, environ, list(chain) if chain else None)
        echo("Providers:")
        for name, ok, detail in check_health(settings):
            mode = f"; structured output {modes[name]} in the last build" if name in modes else ""
            echo(f"  {name:<10} {'ok' if ok else 'unavailable':<12} {detail}{mode}")


def site_prompt(root: Path, component: str, slug: str, echo: Callable[[str], None]) -> None:
    """The exact messages a build would send for one LLM component of one material."""
    from .errors import InputError

    site, renderer, graph = _load(root)
    comp = site.components.get(component)
    if comp is None or comp.kind != "llm":
        llm = ", ".join(sorted(n for n, c in site.components.items() if c.kind == "llm"))
        raise InputError(f"{component!r} is not an llm component (llm components: {llm})")
    if slug not in site.materials:
        raise InputError(f"unknown material slug {slug!r}")
    node = graph.components.get((component, slug))
    if node is None:
        raise InputError(f"material {slug!r} does not use component {component!r}")
    from .llm.structured import with_output_rules
    from .llm.validators import effective_validators

    echo(f"# {component}:{slug}  key {node.key or '-'}  status {node.status}")
    d = comp.definition
    messages = renderer.messages(comp, site.materials[slug], site.dependency_outputs(comp, slug))
    validators = effective_validators(d.get("validators"))
    for message in with_output_rules(messages, d["schema"], validators, site.materials[slug].data):
        echo(f"--- {message['role']} ---")
        echo(message["content"])
