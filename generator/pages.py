"""Template renderers for output nodes: one function per kind of file in build/."""

from __future__ import annotations

from html import escape

from .content import Site
from .graph import ComponentNode, OutputNode, card, index_categories, sitemap_paths, _by_name
from .render import Renderer

SEO_COMPONENT = "frontmatter"  # an LLM component whose output's title/description become page meta


def render_output(node: OutputNode, site: Site, r: Renderer,
                  components: dict[tuple[str, str], ComponentNode]) -> dict[str, bytes]:
    """The files of one output node, as bytes. Raises TemplateFailure for template errors."""
    if node.kind == "asset":
        return {node.subject: site.sources.read_bytes(node.subject)}
    if node.kind == "robots":
        return {"robots.txt": f"User-agent: *\nAllow: /\nSitemap: {r.absolute('/sitemap.xml')}\n".encode()}
    if node.kind == "sitemap":
        return {"sitemap.xml": sitemap_xml(site, r).encode()}
    html = _RENDERERS[node.kind](node.subject, site, r, components)
    return {node.outputs[0]: html.encode("utf-8")}


def _material(slug: str, site: Site, r: Renderer, components) -> str:
    material = site.materials[slug]
    seo = site.outputs.get((SEO_COMPONENT, slug))
    seo_out = seo.output if seo is not None and SEO_COMPONENT in material.components else None
    title = (seo_out or {}).get("title") or material.name
    description = (seo_out or {}).get("description") or material.data.get("description", "")
    page = r.page_context(title, description, material.url, og_type="article")
    deps_all = {name: out.output for name in material.components
                if (out := site.outputs.get((name, slug))) is not None and out.output is not None}
    rendered = []
    for name in material.components:
        component = site.components[name]
        out = site.outputs.get((name, slug))
        if component.kind == "llm" and (out is None or out.output is None):
            rendered.append({"name": name, "kind": component.kind, "html": "", "missing": True})
            continue
        deps = {d: deps_all[d] for d in component.depends_on if d in deps_all}
        html = r.component_html(component, material, out.output if out else None, deps, page)
        rendered.append({"name": name, "kind": component.kind, "html": html, "missing": False})
    return r.layout("material.html", {
        "page": page, "material": {**material.data, "url": material.url},
        "category": r.category_context(material.category),
        "components": rendered, "component": {c["name"]: c["html"] for c in rendered},
    })


def _category(key: str, site: Site, r: Renderer, components) -> str:
    category = r.category_context(key)
    cards = sorted((card(m) for m in site.materials.values() if m.category == key), key=_by_name)
    description = category["description"] or f"{category['title']} on {site.config.title}."
    page = r.page_context(f"{category['title']} | {site.config.title}", description, category["url"])
    return r.layout("category.html", {"page": page, "category": category, "materials": cards})


def _index(_: str, site: Site, r: Renderer, components) -> str:
    page = r.page_context(site.config.title, site.config.description or site.config.title, "/")
    return r.layout("index.html", {"page": page, "categories": index_categories(site, r)})


def _content(slug: str, site: Site, r: Renderer, components) -> str:
    p = site.pages[slug]
    page = r.page_context(f"{p.front['title']} | {site.config.title}", p.front.get("description", ""), p.url)
    return r.layout("page.html", {"page": page, "front": p.front, "content": r.content_html(p)})


def _not_found(_: str, site: Site, r: Renderer, components) -> str:
    page = r.page_context(f"Page not found | {site.config.title}", "The page you asked for does not exist.",
                          "/404.html")
    return r.layout("404.html", {"page": page})


_RENDERERS = {"material": _material, "category": _category, "index": _index, "content": _content,
              "404": _not_found}


def sitemap_xml(site: Site, r: Renderer) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    for path in sitemap_paths(site):
        lines.append(f"  <url><loc>{escape(r.absolute(path), quote=False)}</loc></url>")
    lines.append("</urlset>")
    return "\n".join(lines) + "\n"
