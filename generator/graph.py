"""The build graph: every node's key over exactly its inputs, and why a node is stale (SPEC §3).

This module only decides; it renders, calls and writes nothing (doit: "is it stale and why" is
kept apart from "run it" and "report it").

Nodes:
- component nodes, one per (component, material): an LLM component's key covers its definition,
  version, rendered messages, schema, params and its dependencies' keys; a static component's
  key covers its templates, its input fields, its dependencies' outputs and the site settings.
- output nodes, one per file or group of files in build/: material, category, index, content,
  404 pages, robots.txt, sitemap.xml and each asset.

Keys of a material's nodes are memoised under a signature of everything they can depend on
(the material file, its generated outputs, components, site settings), so an incremental build
recomputes keys only for materials that changed; while the views (layouts and component
templates) are unchanged too, even its static and page keys come from the memo unhashed.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from .content import Component, Material, Site
from .hashing import SCHEME, digest, short
from .render import Renderer
from .state import Memo, NodeRecord

# Key parts ("input:density" -> hash, "definition" -> hash, ...) are kept packed into one string:
# at 10,000 materials, 70,000 small dicts in the memo cost more to load and free than to use.
_ITEM, _PAIR = "\x1e", "\x1f"
OUTPUT_KEY = "="  # in the memo: "the key its output file recorded" (a fresh LLM node)
_FRESH_ENTRY = (OUTPUT_KEY, None, None)  # one object, so the memo stores it once


def pack_parts(parts: dict[str, str]) -> str:
    return _ITEM.join(f"{k}{_PAIR}{v}" for k, v in sorted(parts.items()))


def unpack_parts(packed: str) -> dict[str, str]:
    return dict(item.split(_PAIR, 1) for item in packed.split(_ITEM)) if packed else {}


REASON_LABELS = {"definition": "definition changed (version, schema or params)",
                 "prompt": "prompt template changed", "template": "template changed", "site": "site settings changed"}


@dataclass(slots=True)  # 70,000 of them at 10,000 materials
class ComponentNode:
    component: str
    slug: str
    kind: str  # "llm" | "static"
    key: str | None  # None: blocked, a dependency has no output yet
    # llm: pack_parts() of what the key is made of, to explain a change (None: memoised, not
    # recomputed); static: a digest of it, all its key needs
    parts: str | None
    status: str  # llm: fresh | stale | missing | kept | blocked; static: fresh
    reasons: Sequence[str] = ()
    fingerprint: str | None = None  # llm: hash of what its messages are rendered from

    @property
    def id(self) -> str:
        return f"{self.component}:{self.slug}"

    def __reduce__(self) -> tuple:
        return _by_fields(self)

    @property
    def needs_production(self) -> bool:
        return self.kind == "llm" and self.status in ("stale", "missing")


@dataclass(slots=True)
class OutputNode:
    id: str  # "page:aluminum", "category:metal", "index", "sitemap", "asset:assets/css/site.css"...
    kind: str
    subject: str  # slug, category key, page slug or asset path
    key: str
    outputs: tuple[str, ...]
    reasons: Sequence[str] = ()

    @property
    def stale(self) -> bool:
        return bool(self.reasons)

    def __reduce__(self) -> tuple:
        return _by_fields(self)


def _by_fields(node: Any) -> tuple:
    """Pickle a node as its class and fields: workers send every material's nodes to the
    parent, and the default for slotted classes (a dict of slots per object) took twice the
    time both to pickle and to unpickle."""
    return type(node), tuple(getattr(node, name) for name in node.__slots__)


@dataclass
class Graph:
    components: dict[tuple[str, str], ComponentNode]
    outputs: dict[str, OutputNode]
    memo: dict[str, tuple]  # slug -> (material sig, node entries, view sig, page key)

    def stale_llm(self) -> list[ComponentNode]:
        return [n for n in self.components.values() if n.kind == "llm" and n.status != "fresh"]

    def stale_outputs(self) -> list[OutputNode]:
        return [n for n in self.outputs.values() if n.stale]


class GraphBuilder:
    def __init__(self, site: Site, renderer: Renderer, previous: dict[str, NodeRecord], memo: Memo,
                 out_exists, keys: dict | None = None):
        self.site = site
        self.r = renderer
        self.previous = previous  # output nodes of the last successful build
        self.parts = memo.parts  # key parts of component nodes when last fresh
        self.memo = memo.keys if keys is None else keys  # material sig -> node keys
        self.out_exists = out_exists  # callable(rel) -> bool: is the file in the output dir
        sources = site.sources
        # What every material's LLM keys and static inputs can depend on. Not the layouts nor the
        # components' view templates: editing those re-renders pages, it changes no key here.
        self._static_base: dict[str, str] = {}  # per component / category: hashed once per build
        self._page_base: dict[str, str] = {}
        self._llm_bases: dict[str, tuple[dict, str, str]] = {}
        views = {c.template for c in site.components.values()}
        self.generation_sig = short([
            renderer.site_sig, renderer.text_sig, site.config.categories,
            [(rel, sources.sha(rel)) for rel in sources.under("components") if rel not in views],
        ])
        # What static keys and page keys depend on beyond a material's own files: while it is
        # unchanged, a material whose files are unchanged keeps its keys without hashing anything.
        self.view_sig = short([
            renderer.site_sig, renderer.template_sig("material.html"),
            sorted((c.name, renderer.template_sig(c.template)) for c in site.components.values()),
            [renderer.category_context(k) for k in site.config.categories],
        ])
        self.global_sig = short([self.generation_sig, self.view_sig])  # recorded in the memo

    def for_site(self, site: Site) -> GraphBuilder:
        """This builder over another view of the same site (one share's materials)."""
        share = copy.copy(self)
        share.site = site
        return share

    # -- component nodes -----------------------------------------------------------------------

    def material_sig(self, material: Material) -> str:
        """Everything a material's nodes can depend on, cheaply: global sig and file hashes."""
        sources, outputs, slug = self.site.sources, self.site.outputs, material.slug
        parts = [self.generation_sig, sources.sha(material.file)]
        for c in material.components:
            out = outputs.get((c, slug))
            parts.append(f"{c}={sources.sha(out.file) if out is not None else '-'}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def _memo_hit(self, material: Material) -> tuple[str, tuple | None]:
        """The material's signature, and its memo entry if that entry still holds."""
        sig = self.material_sig(material)
        old = self.memo.get(material.slug)
        return sig, old if old is not None and old[0] == sig else None

    def component_nodes(self, material: Material, memo_entry: dict | None,
                        keys_valid: bool = False) -> dict[str, ComponentNode]:
        """The material's component nodes; from `memo_entry` when its files are unchanged
        (`keys_valid`: and the views too, so even static keys need no hashing)."""
        nodes: dict[str, ComponentNode] = {}
        field_sigs: dict[str, str] = {}  # components share input fields: hash each field once
        listed = set(material.components)
        for name in self.site.component_order:
            if name not in listed:
                continue
            component = self.site.components[name]
            cached = memo_entry.get(name) if memo_entry else None
            if cached is not None:
                key, parts, fingerprint = cached
                if key == OUTPUT_KEY:  # it was fresh: the key and fingerprint its output recorded
                    out = self.site.outputs[(name, material.slug)]
                    key, fingerprint = out.key, fingerprint or out.inputs_sha256
                if component.kind == "static" and not keys_valid:
                    key = self._static_key(component, material, parts)
            else:
                key, parts, fingerprint = self._key(component, material, nodes, field_sigs)
                if component.kind == "static":
                    key = self._static_key(component, material, parts)
            nodes[name] = self._status(component, material, key, parts, nodes)
            nodes[name].fingerprint = fingerprint
        return nodes

    def _key(self, component: Component, material: Material, done: dict[str, ComponentNode],
             field_sigs: dict[str, str]):
        if not field_sigs:  # once per material: its components share input fields
            field_sigs.update((k, short(v)) for k, v in material.data.items() if k != "slug")
        parts = {f"input:{k}": field_sigs[k] for k in component.input_names(field_sigs)}
        if component.kind == "llm":
            deps = self.site.dependency_outputs(component, material.slug)
            missing = [d for d in component.depends_on if d not in deps]
            if missing:
                return None, pack_parts({"blocked": ",".join(missing)}), None
            definition, definition_sig, prompt_sig = self._llm_base(component)
            dep_keys = {dep: done[dep].key if dep in done else None for dep in component.depends_on}
            parts.update({"definition": definition_sig, "prompt": prompt_sig})
            parts.update({f"dep:{dep}": short(key) for dep, key in dep_keys.items()})
            # Everything the rendered messages are made of. When the output file recorded the same
            # fingerprint, its key is the key: no need to render the prompt again (cold builds).
            fingerprint = short({"parts": parts, "deps": deps, "site": self.r.site_sig, "text": self.r.text_sig,
                                 "category": self.r.category_context(material.category)})
            out = self.site.outputs.get((component.name, material.slug))
            if out is not None and out.key and out.inputs_sha256 == fingerprint:
                return out.key, pack_parts(parts), fingerprint
            messages = self.r.messages(component, material, deps)
            key = digest({"node": "llm", "component": component.name, **definition,
                          "messages": messages, "deps": dep_keys})
            return key, pack_parts(parts), fingerprint
        # static: the key is _static_key(), over a digest of these parts (all the memo keeps)
        return None, short(pack_parts(parts)), None

    def _llm_base(self, component: Component) -> tuple[dict, str, str]:
        """An LLM component's definition and the hashes of it and its prompt: once per build."""
        base = self._llm_bases.get(component.name)
        if base is None:
            d = component.definition
            definition = {"version": component.version, "schema": d["schema"], "params": d.get("params", {})}
            base = self._llm_bases[component.name] = (definition, short(definition), self.r.prompt_sig(component))
        return base

    def _static_key(self, component: Component, material: Material, parts: str) -> str:
        """Over its input fields' hashes (memoised: no parsing), its template, its dependencies'
        output files and the site settings: recomputed every build, cheaply."""
        sources, slug = self.site.sources, material.slug
        base = self._static_base.get(component.name)
        if base is None:  # the same for every material: hashed once per build
            base = self._static_base[component.name] = short({
                "node": "static", "component": component.name, "definition": component.definition,
                "template": self.r.template_sig(component.template), "site": self.r.site_sig})
        deps = [f"{dep}={sources.sha(out.file)}" for dep in component.depends_on
                if (out := self.site.outputs.get((dep, slug))) is not None]
        text = "|".join([base, parts, *deps])
        return f"{SCHEME}:" + hashlib.sha256(text.encode()).hexdigest()

    def _status(self, component: Component, material: Material, key: str | None, parts: str,
                done: dict[str, ComponentNode]) -> ComponentNode:
        node = ComponentNode(component.name, material.slug, component.kind, key, parts, "fresh")
        if component.kind == "static":
            return node
        if key is None:
            node.status = "blocked"
            node.reasons = [f"waits for {unpack_parts(parts)['blocked']} (no output yet)"]
            return node
        out = self.site.outputs.get((component.name, material.slug))
        if out is None:
            node.status, node.reasons = "missing", ["no output yet"]
        elif out.key != key:
            previous = self.parts.get(node.id)
            reasons = explain(previous, parts) if previous and parts else ["inputs changed since it was generated"]
            if out.kept:
                node.status = "kept"
                why = "pinned" if out.pinned else "edited by hand"
                node.reasons = [f"stale but kept ({why}): " + "; ".join(reasons)]
            else:
                node.status, node.reasons = "stale", reasons
        return node

    def _memo_entry(self, node: ComponentNode) -> tuple:
        """What the memo keeps of a node: a fresh LLM node's key and fingerprint are its output
        file's (it names them rather than repeat 40,000 keys) and its parts are in memo.parts."""
        if node.kind == "llm" and node.status == "fresh":
            out = self.site.outputs[(node.component, node.slug)]
            return _FRESH_ENTRY if node.fingerprint == out.inputs_sha256 else (OUTPUT_KEY, None, node.fingerprint)
        return node.key, node.parts, node.fingerprint

    # -- output nodes --------------------------------------------------------------------------

    def _output(self, node_id: str, kind: str, subject: str, key: str, outputs: tuple[str, ...]) -> OutputNode:
        node = OutputNode(node_id, kind, subject, key, outputs)
        previous = self.previous.get(node_id)
        if previous is None:
            node.reasons = ["new"]
        elif previous.key != key:
            node.reasons = ["inputs changed"]
        elif not all(self.out_exists(o) for o in outputs):
            node.reasons = ["output file missing"]
        return node

    def material_page_key(self, material: Material, nodes: dict[str, ComponentNode]) -> str:
        """Over the layout, site settings, the material's data and what each component shows."""
        base = self._page_base.get(material.category)
        if base is None:  # the same for every material of a category: hashed once per build
            base = self._page_base[material.category] = short({
                "node": "page", "layout": self.r.template_sig("material.html"), "site": self.r.site_sig,
                "category": self.r.category_context(material.category)})
        entries = [base, material.summary.data_sig]
        for name in material.components:
            component = self.site.components[name]
            if component.kind == "llm":  # its view template and its output file
                out = self.site.outputs.get((name, material.slug))
                shown = self.site.sources.sha(out.file) if out is not None else "-"
                entries.append(f"{name}={self.r.template_sig(component.template)}:{shown}")
            else:  # the static key covers its template
                entries.append(f"{name}={nodes[name].key}")
        return f"{SCHEME}:" + hashlib.sha256("|".join(entries).encode()).hexdigest()

    def material_page(self, material: Material, page_key: str) -> OutputNode:
        slug = material.slug
        return self._output(f"page:{slug}", "material", slug, page_key, (f"{material.category}/{slug}/index.html",))

    def material_result(self, material: Material, hit: tuple[str, tuple | None] | None = None
                        ) -> tuple[dict[str, ComponentNode], str, tuple]:
        """A material's component nodes, its page key and its memo entry (`hit`: _memo_hit())."""
        sig, old = hit or self._memo_hit(material)
        entry = old[1] if old is not None else None
        if entry is not None and old[2] == self.view_sig:
            nodes = self.component_nodes(material, entry, keys_valid=True)
            page_key = old[3]
        else:
            nodes = self.component_nodes(material, entry)
            page_key = self.material_page_key(material, nodes)
        return nodes, page_key, (sig, {n: self._memo_entry(node) for n, node in nodes.items()},
                                 self.view_sig, page_key)

    def build(self, previous: Graph | None = None, changed: set[str] = frozenset(),
              computed: dict[str, tuple] | None = None) -> Graph:
        """The whole graph; with `previous`, only materials in `changed` are looked at again
        (used after producing LLM outputs for those materials within one build). `computed`:
        (*material_result(), page node) of materials already worked out (shares.run_shares)."""
        site, r = self.site, self.r
        components: dict[tuple[str, str], ComponentNode] = {}
        outputs: dict[str, OutputNode] = {}
        memo: dict[str, tuple] = {}
        computed = computed or {}
        for slug, material in site.materials.items():
            if previous is not None and slug not in changed:
                for name in material.components:
                    components[(name, slug)] = previous.components[(name, slug)]
                outputs[f"page:{slug}"] = previous.outputs[f"page:{slug}"]
                memo[slug] = previous.memo[slug]
                continue
            done = computed.get(slug)
            if done is not None:
                nodes, _, memo[slug], page = done
            else:
                nodes, page_key, memo[slug] = self.material_result(material)
                page = self.material_page(material, page_key)
            for name, node in nodes.items():
                components[(name, slug)] = node
            outputs[page.id] = page
        for key in site.config.categories:
            cards = [card(m) for m in site.materials.values() if m.category == key]
            k = digest({"node": "category", "layout": r.template_sig("category.html"), "site": r.site_sig,
                        "category": r.category_context(key), "materials": sorted(cards, key=_by_name)})
            outputs[f"category:{key}"] = self._output(f"category:{key}", "category", key, k, (f"{key}/index.html",))
        k = digest({"node": "index", "layout": r.template_sig("index.html"), "site": r.site_sig,
                    "categories": index_categories(site, r)})
        outputs["index"] = self._output("index", "index", "", k, ("index.html",))
        for slug, page in site.pages.items():
            k = digest({"node": "content", "layout": r.template_sig("page.html"), "site": r.site_sig,
                        "front": page.front, "body": site.sources.sha(page.file)})
            outputs[f"content:{slug}"] = self._output(f"content:{slug}", "content", slug, k, (f"{slug}/index.html",))
        k = digest({"node": "404", "layout": r.template_sig("404.html"), "site": r.site_sig})
        outputs["404"] = self._output("404", "404", "", k, ("404.html",))
        outputs["robots"] = self._output("robots", "robots", "", digest({"robots": site.config.base_url}),
                                         ("robots.txt",))
        k = digest({"node": "sitemap", "urls": sitemap_paths(site)})
        outputs["sitemap"] = self._output("sitemap", "sitemap", "", k, ("sitemap.xml",))
        for rel in site.assets:
            k = digest({"asset": site.sources.sha(rel)})
            outputs[f"asset:{rel}"] = self._output(f"asset:{rel}", "asset", rel, k, (rel,))
        return Graph(components, outputs, memo)


def explain(previous_packed: str | None, parts_packed: str) -> list[str]:
    """Which parts of a key changed, in words a user understands."""
    if previous_packed is None:
        return ["new"]
    previous, parts = unpack_parts(previous_packed), unpack_parts(parts_packed)
    reasons = []
    for name in sorted(set(previous) | set(parts)):
        if previous.get(name) == parts.get(name):
            continue
        kind, _, what = name.partition(":")
        if kind == "input":
            reasons.append(f"field {what!r} " + ("added" if name not in previous else
                                                 "removed" if name not in parts else "changed"))
        elif kind == "dep":
            reasons.append(f"dependency {what!r} changed")
        else:
            reasons.append(REASON_LABELS.get(name, f"{name} changed"))
    return reasons or ["inputs changed"]


def card(m: Material) -> dict[str, Any]:
    return {"name": m.name, "slug": m.slug, "url": m.url, "summary": m.summary.description,
            "formula": m.summary.formula}


def _by_name(c: dict) -> tuple:
    return (c["name"].lower(), c["slug"])


def index_categories(site: Site, r: Renderer) -> list[dict[str, Any]]:
    out = []
    for key in site.config.categories:
        members = sorted((card(m) for m in site.materials.values() if m.category == key), key=_by_name)
        out.append({**r.category_context(key), "count": len(members),
                    "materials": [{"name": c["name"], "url": c["url"]} for c in members]})
    return out


def sitemap_paths(site: Site) -> list[str]:
    paths = ["/"] + [f"/{key}/" for key in site.config.categories]
    paths += [m.url for m in site.materials.values()] + [p.url for p in site.pages.values()]
    return sorted(paths)
