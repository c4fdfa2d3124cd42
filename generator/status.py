"""`site status`: what is stale and why, what a build would spend, and provider health.

Reads the same graph as `site build` but produces and writes nothing.
"""

from __future__ import annotations

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
            echo(f"  {name:<10} {'ok' if ok else 'unavailable':<12} {detail}")


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

    echo(f"# {component}:{slug}  key {node.key or '-'}  status {node.status}")
    d = comp.definition
    messages = renderer.messages(comp, site.materials[slug], site.dependency_outputs(comp, slug))
    for message in with_output_rules(messages, d["schema"], d.get("validators", ()), site.materials[slug].data):
        echo(f"--- {message['role']} ---")
        echo(message["content"])
