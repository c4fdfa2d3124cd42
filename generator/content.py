"""Content loading and validation: the site's inputs -> a validated `Site`.

Everything is read and checked before anything is written (pelican's read-everything-then-write):
every problem in every file is collected and reported at once. Parsed files are memoised by
content hash across builds (`parse_cache`), so an incremental build parses only what changed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from . import yamlio
from .config import FastValidator, SiteConfig, schema_problems
from .errors import InputError, Problem
from .hashing import output_sha, short
from .sources import Sources

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
COMPONENT_NAME_RE = re.compile(r"^[a-z0-9_-]+$")
ALWAYS_INPUTS = ("name", "category", "slug")
DEFAULT_SCHEMA = Path(__file__).parent / "schemas" / "material.schema.json"


class Lazy:
    """A value parsed from a file on first use: an incremental build keeps only summaries of
    unchanged files in memory and parses just the ones it renders. `release()` drops the value
    once its page is written, so a cold build of a large site keeps memory flat."""

    __slots__ = ("_value", "_load", "_loaded")

    def __init__(self, value: Any = None, load: Callable[[], Any] | None = None):
        self._value, self._load, self._loaded = value, load, value is not None or load is None

    def get(self) -> Any:
        if not self._loaded:
            self._value, self._loaded = self._load(), True
        return self._value

    def release(self) -> None:
        if self._load is not None:
            self._value, self._loaded = None, False


class MaterialSummary(NamedTuple):
    """What the graph and listing pages need of a material; kept in the build memo."""

    slug: str
    name: str
    category: str
    components: tuple[str, ...]
    description: str
    formula: str
    author: str | None
    data_sig: str  # fingerprint of every field: the material page's key uses it


@dataclass(frozen=True, slots=True)
class Material:
    summary: MaterialSummary
    file: str  # relative path of the material's YAML file
    lazy: Lazy = field(compare=False, repr=False)

    @property
    def data(self) -> dict[str, Any]:
        """Every field of the file, plus `slug` (parsed on first use)."""
        return self.lazy.get()

    slug = property(lambda self: self.summary.slug)
    name = property(lambda self: self.summary.name)
    category = property(lambda self: self.summary.category)
    components = property(lambda self: self.summary.components)

    @property
    def url(self) -> str:
        return f"/{self.category}/{self.slug}/"


@dataclass(frozen=True)
class Component:
    name: str
    kind: str  # "llm" | "static"
    folder: str  # e.g. "components/caption"
    definition: dict[str, Any]  # component.yaml as parsed
    inputs: tuple[str, ...] | None  # material fields feeding it; None = all
    depends_on: tuple[str, ...]
    template: str  # jinja name of the view template
    files_sha: dict[str, str]  # sha of every file of the component folder

    @property
    def version(self) -> Any:
        return self.definition.get("version", 1)

    def jinja_name(self, value: str) -> str:
        return f"{self.folder}/{value}"

    def input_names(self, fields: Iterable[str]) -> list[str]:
        """Which of a material's `fields` this component may see (declared inputs + identity)."""
        if self.inputs is None:
            return list(fields)
        wanted = set(self.inputs) | set(ALWAYS_INPUTS)
        return [k for k in fields if k in wanted]

    def select_inputs(self, material: Material) -> dict[str, Any]:
        """The material fields this component may see (its declared inputs + identity)."""
        data = material.data
        return {k: data[k] for k in self.input_names(data)}


@dataclass(frozen=True, slots=True)
class GeneratedOutput:
    """content/components/<component>/<slug>.yaml: the reviewed record of an LLM component."""

    component: str
    slug: str
    file: str
    key: str | None
    hand_edited: bool  # output no longer matches output_sha256
    pinned: bool
    inputs_sha256: str | None  # fingerprint of what its prompt was rendered from (saves re-rendering)
    lazy: Lazy = field(compare=False, repr=False)

    @property
    def output(self) -> dict[str, Any]:
        """The generated object (parsed on first use)."""
        return self.lazy.get()

    @property
    def kept(self) -> bool:
        """Never overwritten by a build (SPEC §2.3)."""
        return self.hand_edited or self.pinned

    @property
    def meta(self) -> tuple:
        """What the build memo keeps of it (SiteLoader.output() makes it again)."""
        return (self.key, self.hand_edited, self.pinned, self.inputs_sha256)


@dataclass(frozen=True)
class ContentPage:
    slug: str
    file: str
    front: dict[str, Any]
    body: str

    @property
    def url(self) -> str:
        return f"/{self.slug}/"


@dataclass
class ShareLoad:
    """What loading one share of the material and output files found (sent to the parent)."""

    materials: list[tuple[str, MaterialSummary]]  # (file, summary) of each valid material
    outputs: list[tuple[str, tuple]]  # (file, metadata) of each valid output
    shas: dict[str, str]  # file -> sha256, for the build state and keys
    signatures: dict[str, tuple]  # file -> stat signature, for the build state
    problems: list[Problem]


@dataclass
class Site:
    root: Path
    config: SiteConfig
    sources: Sources
    materials: dict[str, Material]  # slug -> material, sorted by category then name
    components: dict[str, Component]
    component_order: tuple[str, ...]  # dependency order (dependencies first)
    pages: dict[str, ContentPage]
    outputs: dict[tuple[str, str], GeneratedOutput]  # (component, slug) -> output
    data: dict[str, Any]  # data/*.yaml by file stem
    layouts: tuple[str, ...]  # jinja names of layout files
    assets: tuple[str, ...]  # relative paths under assets/
    warnings: list[str] = field(default_factory=list)

    def output_path(self, component: str, slug: str) -> str:
        return f"content/components/{component}/{slug}.yaml"

    def dependency_outputs(self, component: Component, slug: str) -> dict[str, Any]:
        """The outputs of a component's dependencies for one material (what its prompt sees)."""
        deps = {}
        for dep in component.depends_on:
            out = self.outputs.get((dep, slug))
            if out is not None and out.output is not None:
                deps[dep] = out.output
        return deps

    def release(self, slug: str) -> None:
        """Forget a material's parsed data and outputs (they are re-read if needed again)."""
        material = self.materials[slug]
        material.lazy.release()
        for name in material.components:
            out = self.outputs.get((name, slug))
            if out is not None:
                out.lazy.release()


class SiteLoader:
    """One pass over the sources, collecting problems instead of stopping at the first.

    In three steps, so that the material and output files (nearly all of a large site) can be
    loaded in shares by several processes: `frame()` (everything else), `load_share()` for
    each share of files, then `merge()` of every share's report, which checks what spans
    files (duplicate slugs, references) and raises every problem at once.
    """

    def __init__(self, root: Path, config: SiteConfig, sources: Sources, parse_cache: dict[str, Any]):
        self.root = root
        self.config = config
        self.sources = sources
        self.cache = parse_cache
        self.new_cache: dict[str, Any] = {}
        self.problems: list[Problem] = []
        # Materials and generated outputs by file: those this process loaded (their data
        # parsed), and in the process that merges, every other one (read again when needed).
        self.by_file: dict[str, Material | GeneratedOutput] = {}
        self._validator: FastValidator | None = None

    # Parse a YAML file, memoised while its bytes are those of the last build (the memo belongs
    # to that build's state) and an extra token (such as the schema's hash) is the same.
    def yaml(self, rel: str, token: str = "") -> tuple[Any, bool]:
        hit = self.cache.get(rel)
        if hit is not None and hit[0] == token and self.sources.unchanged(rel):
            self.new_cache[rel] = hit
            return hit[1], True
        try:
            data = yamlio.parse(self.sources.read_text(rel), rel)
        except yamlio.YamlSyntaxError as exc:
            self.problems.append(exc.problem)
            return None, False
        except UnicodeDecodeError:
            self.problems.append(Problem(rel, "not UTF-8 text"))
            return None, False
        return data, False

    def remember(self, rel: str, token: str, data: Any) -> None:
        self.new_cache[rel] = (token, data)

    def problem(self, rel: str, message: str, path: list | None = None, field: str | None = None) -> None:
        line = None
        if path is not None:
            try:
                line = yamlio.line_of(self.sources.read_text(rel), path)
            except (OSError, UnicodeDecodeError):
                line = None
            field = field or ".".join(str(p) for p in path) or None
        self.problems.append(Problem(rel, message, line, field))

    # -- components ----------------------------------------------------------------------------

    def components(self) -> dict[str, Component]:
        found: dict[str, Component] = {}
        folders = sorted({PurePosixPath(rel).parts[1] for rel in self.sources.under("components")
                          if len(PurePosixPath(rel).parts) > 2})
        for name in folders:
            rel = f"components/{name}/component.yaml"
            if not self.sources.exists(rel):
                self.problems.append(Problem(f"components/{name}", "component folder has no component.yaml"))
                continue
            if not COMPONENT_NAME_RE.match(name):
                self.problem(rel, f"component name {name!r} must match [a-z0-9_-]+")
                continue
            # The folder's file list is part of the memo: a deleted template must be noticed.
            token = ",".join(r for r in self.sources.under(f"components/{name}"))
            data, cached = self.yaml(rel, token)
            if data is None and not cached:
                continue
            component = self.component(name, rel, data, cached, token)
            if component is not None:
                found[name] = component
        return found

    def component(self, name: str, rel: str, data: Any, cached: bool, token: str) -> Component | None:
        from .components_schema import component_problems

        folder = f"components/{name}"
        files_sha = {r[len(folder) + 1:]: self.sources.sha(r) for r in self.sources.under(folder)}
        if not cached:
            problems = component_problems(data, self.sources.read_text(rel), rel, files_sha)
            if problems:
                self.problems.extend(problems)
                return None
            self.remember(rel, token, data)
        return Component(
            name=name,
            kind=data["kind"],
            folder=folder,
            definition=data,
            inputs=tuple(data["inputs"]) if "inputs" in data else None,
            depends_on=tuple(data.get("depends_on", ())),
            template=f"{folder}/{data['template']}",
            files_sha=files_sha,
        )

    def component_order(self, components: dict[str, Component]) -> tuple[str, ...]:
        order: list[str] = []
        state: dict[str, str] = {}

        def visit(name: str, trail: list[str]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = trail[trail.index(name):] + [name]
                self.problems.append(Problem(components[name].folder + "/component.yaml",
                                             "dependency cycle: " + " -> ".join(cycle), None, "depends_on"))
                return
            state[name] = "visiting"
            for dep in components[name].depends_on:
                if dep not in components:
                    rel = components[name].folder + "/component.yaml"
                    index = components[name].depends_on.index(dep)
                    self.problem(rel, f"depends on unknown component {dep!r}", ["depends_on", index])
                    continue
                visit(dep, trail + [name])
            state[name] = "done"
            order.append(name)

        for name in sorted(components):
            visit(name, [])
        return tuple(order)

    # -- materials -----------------------------------------------------------------------------

    def schema_token(self) -> str | None:
        """What material files are validated against (their memo token); None: it is missing."""
        schema_rel = self.config.material_schema
        if not schema_rel:
            return "default"
        return self.sources.sha(schema_rel) if self.sources.exists(schema_rel) else None

    def load_materials(self, files: Iterable[str]) -> list[tuple[str, MaterialSummary]]:
        """Parse and validate material files, each on its own (merge() checks what spans files)."""
        token = self.schema_token()
        if token is None:
            return []  # merge() reports the missing schema
        loaded = []
        for rel in files:
            data, cached = self.yaml(rel, token)
            if data is None and not cached:
                continue
            if cached:
                summary: MaterialSummary = data
                material = Material(summary, rel, Lazy(load=self._reader(rel, summary.slug)))
            else:
                if not isinstance(data, dict):
                    self.problems.append(Problem(rel, "a material file must be a mapping of fields", 1))
                    continue
                if self._validator is None:
                    self._validator = FastValidator(self._material_schema(self.config.material_schema))
                if not self._validator.is_valid(data):
                    problems = schema_problems(self._validator.explainer, data, self.sources.read_text(rel), rel)
                    if problems:
                        self.problems.extend(problems)
                        continue
                material = self.material(rel, data)
                if material is None:
                    continue
            self.by_file[rel] = material
            loaded.append((rel, material.summary))
        return loaded

    def merge_materials(self, loaded: list[tuple[str, MaterialSummary]],
                        components: dict[str, Component]) -> dict[str, Material]:
        """Every share's materials: slugs unique, categories and components known; site order."""
        token = self.schema_token()
        if token is None:
            self.problems.append(Problem("site.yaml", f"material_schema file {self.config.material_schema!r} "
                                         "not found", None, "material_schema"))
            return {}
        by_slug: dict[str, Material] = {}
        for rel, summary in sorted(loaded):
            material = self.by_file.get(rel)
            if material is None:  # loaded by another process: read again if a page needs it
                material = self.by_file[rel] = Material(summary, rel, Lazy(load=self._reader(rel, summary.slug)))
            self.remember(rel, token, summary)
            if material.slug in by_slug:
                other = by_slug[material.slug].file
                self.problem(rel, f"duplicate slug {material.slug!r}: also used by {other}",
                             ["slug"] if material.slug != PurePosixPath(rel).stem else [], "slug")
                continue
            if not self.references_ok(material, components):
                continue
            by_slug[material.slug] = material
        return dict(sorted(by_slug.items(), key=lambda kv: (kv[1].category, kv[1].name.lower(), kv[0])))

    def _material_schema(self, schema_rel: str | None) -> dict:
        if schema_rel is None:
            return json.loads(DEFAULT_SCHEMA.read_text(encoding="utf-8"))
        try:
            return json.loads(self.sources.read_text(schema_rel))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError("the material schema is not valid JSON", [Problem(schema_rel, str(exc))]) from None

    def material(self, rel: str, data: dict) -> Material | None:
        stem = PurePosixPath(rel).stem
        slug = data.get("slug", stem)
        ok = True
        if not isinstance(slug, str) or not SLUG_RE.match(slug):
            where = ["slug"] if "slug" in data else None
            self.problem(rel, f"slug {slug!r} must match [a-z0-9-]+ (set `slug:` or rename the file)",
                         where, "slug")
            ok = False
        if not ok:
            return None
        full = dict(data)
        full["slug"] = slug
        summary = MaterialSummary(slug=slug, name=data["name"], category=data["category"],
                                  components=tuple(data["components"]), description=data.get("description", ""),
                                  formula=data.get("formula", ""), author=data.get("author"),
                                  data_sig=short(full))
        return Material(summary, rel, Lazy(full, self._reader(rel, slug)))

    def references_ok(self, material: Material, components: dict[str, Component]) -> bool:
        """Checked on every build (also for memoised files): site.yaml or components may change."""
        ok = True
        if material.category not in self.config.categories:
            known = ", ".join(sorted(self.config.categories))
            self.problem(material.file, f"unknown category {material.category!r} (site.yaml has: {known})",
                         ["category"])
            ok = False
        for index, name in enumerate(material.components):
            if name not in components:
                self.problem(material.file, f"unknown component {name!r} (no components/{name}/component.yaml)",
                             ["components", index])
                ok = False
        return ok

    def _reader(self, rel: str, slug: str) -> Callable[[], dict]:
        # partial, not a closure: 50,000 of these at 10,000 materials
        return partial(_read_material, self.sources, rel, slug)

    # -- generated outputs -------------------------------------------------------------------------

    def load_outputs(self, files: Iterable[str]) -> list[tuple[str, tuple]]:
        """Parse generated output files: (file, (key, hand_edited, pinned, inputs_sha256))."""
        loaded = []
        for rel in files:
            data, cached = self.yaml(rel)
            if data is None and not cached:
                continue
            if cached:
                meta, value = data, None
            else:
                if not isinstance(data, dict) or not isinstance(data.get("output"), dict):
                    self.problem(rel, "a generated component file must be a mapping with an `output` mapping",
                                 [], "output")
                    continue
                key = data.get("key") if isinstance(data.get("key"), str) else None
                hand_edited = data.get("output_sha256") != output_sha(data["output"])
                pinned = data.get("pinned") is True
                inputs = data.get("inputs_sha256") if isinstance(data.get("inputs_sha256"), str) else None
                meta, value = (key, hand_edited, pinned, inputs), data["output"]
            self.by_file[rel] = self.output(rel, meta, value)
            loaded.append((rel, meta))
        return loaded

    def output(self, rel: str, meta: tuple, value: dict | None = None) -> GeneratedOutput:
        """content/components/<component>/<slug>.yaml, from what load_outputs() found in it."""
        key, hand_edited, pinned, inputs = meta
        _, _, component, name = rel.split("/")
        return GeneratedOutput(component=component, slug=name[:-len(".yaml")], file=rel, key=key,
                               hand_edited=hand_edited, pinned=pinned, inputs_sha256=inputs,
                               lazy=Lazy(value, self._output_reader(rel)))

    def merge_outputs(self, loaded: list[tuple[str, tuple]]) -> dict[tuple[str, str], GeneratedOutput]:
        found = {}
        for rel, meta in sorted(loaded):
            out = self.by_file.get(rel)
            if out is None:  # loaded by another process
                out = self.by_file[rel] = self.output(rel, meta)
            self.remember(rel, "", meta)
            found[(out.component, out.slug)] = out
        return found

    def _output_reader(self, rel: str) -> Callable[[], dict]:
        return partial(_read_output, self.sources, rel)

    # -- pages, data, layouts ------------------------------------------------------------------

    def pages(self) -> dict[str, ContentPage]:
        from .markdown import split_front_matter

        pages = {}
        for rel in self.sources.under("content/pages"):
            if not rel.endswith(".md"):
                continue
            slug = PurePosixPath(rel).stem
            if not SLUG_RE.match(slug):
                self.problems.append(Problem(rel, f"page file name {slug!r} must be a slug ([a-z0-9-]+.md)"))
                continue
            try:
                front, body = split_front_matter(self.sources.read_text(rel), rel)
            except yamlio.YamlSyntaxError as exc:
                self.problems.append(exc.problem)
                continue
            if not isinstance(front.get("title"), str) or not front["title"]:
                self.problems.append(Problem(rel, "front matter needs a `title`", 1, "title"))
                continue
            if slug in {"index", "404", "sitemap", "assets"} or slug in self.config.categories:
                self.problems.append(Problem(rel, f"page slug {slug!r} collides with a built page"))
                continue
            pages[slug] = ContentPage(slug=slug, file=rel, front=front, body=body)
        return pages

    def data(self) -> dict[str, Any]:
        found = {}
        for rel in self.sources.under("data"):
            if rel.endswith((".yaml", ".yml")) and rel.count("/") == 1:
                value, cached = self.yaml(rel)
                if value is None and not cached:
                    continue
                if not cached:
                    self.remember(rel, "", value)
                found[PurePosixPath(rel).stem] = value
        return found

    def layouts(self) -> tuple[str, ...]:
        names = tuple(rel[len("layouts/"):] for rel in self.sources.under("layouts"))
        for required in ("base.html", "index.html", "category.html", "material.html", "page.html", "404.html"):
            if required not in names:
                self.problems.append(Problem(f"layouts/{required}", "missing layout template"))
        return names

    # -- the three steps -----------------------------------------------------------------------

    def frame(self) -> Site:
        """The site without its materials and generated outputs (merge() adds them). Problems
        found here are raised by merge(), with those of every material file."""
        components = self.components()
        order = self.component_order(components)
        return Site(root=self.root, config=self.config, sources=self.sources, materials={},
                    components=components, component_order=order, pages=self.pages(), outputs={},
                    data=self.data(), layouts=self.layouts(), assets=tuple(self.sources.under("assets")))

    def load_share(self, material_files: Sequence[str], output_files: Sequence[str]) -> ShareLoad:
        """Load some of the material and output files; what merge() needs of them."""
        before = len(self.problems)
        materials = self.load_materials(material_files)
        outputs = self.load_outputs(output_files)
        problems = self.problems[before:]
        del self.problems[before:]  # merge() takes every share's problems, this one's included
        return ShareLoad(materials, outputs, *self.sources.known((*material_files, *output_files)), problems)

    def merge(self, site: Site, loads: Iterable[ShareLoad], outputs_now: bool = True) -> list[tuple[str, tuple]]:
        """Fill `site` with every share's materials and outputs, checking what spans files;
        raise InputError listing every problem of the site at once. Returns the outputs'
        (file, metadata); with `outputs_now` False, the caller fills `site.outputs` with
        merge_outputs() later (the workers need not wait for 40,000 objects to be made)."""
        materials: list[tuple[str, MaterialSummary]] = []
        outputs: list[tuple[str, tuple]] = []
        for load in loads:
            self.sources.adopt(load.shas, load.signatures)
            self.problems.extend(load.problems)
            materials += load.materials
            outputs += load.outputs
        site.materials = self.merge_materials(materials, site.components)
        if outputs_now:
            site.outputs = self.merge_outputs(outputs)
        authors = site.data.get("authors")
        for material in site.materials.values():
            author = material.summary.author
            if author is not None and isinstance(authors, dict) and author not in authors:
                self.problem(material.file, f"unknown author {author!r} (not in data/authors.yaml)", ["author"])
        if self.problems:
            raise InputError(f"{len(self.problems)} problem(s) in the site's input",
                             sorted(set(self.problems), key=lambda p: (p.file, p.line or 0, p.message)))
        return outputs

    def share_view(self, site: Site, material_files: Iterable[str], whole_site: bool = False) -> Site:
        """The site as one share sees it: the materials of `material_files` that loaded, with
        every generated output this process has. Unless the share is the whole site, an output
        of theirs that another share loaded (its file name is not the material's) is read here
        too; its problems, if any, are that share's to report."""
        materials = [m for rel in material_files if isinstance(m := self.by_file.get(rel), Material)]
        missing = [] if whole_site else [
            rel for m in materials for name in m.components
            if (rel := site.output_path(name, m.slug)) not in self.by_file and self.sources.exists(rel)]
        if missing:
            before = len(self.problems)
            self.load_outputs(missing)
            del self.problems[before:]
        outputs = [o for o in self.by_file.values() if isinstance(o, GeneratedOutput)]
        return replace(site, materials={m.slug: m for m in materials},
                       outputs={(o.component, o.slug): o for o in outputs})


def _read_material(sources: Sources, rel: str, slug: str) -> dict:
    data = dict(yamlio.parse(sources.read_text(rel), rel))
    data["slug"] = slug
    return data


def _read_output(sources: Sources, rel: str) -> dict:
    return yamlio.parse(sources.read_text(rel), rel)["output"]


def material_files(sources: Sources) -> list[str]:
    return [rel for rel in sources.under("materials") if rel.endswith((".yaml", ".yml"))]


def output_files(sources: Sources) -> list[str]:
    """content/components/<component>/<slug>.yaml"""
    return [rel for rel in sources.under("content/components") if rel.count("/") == 3 and rel.endswith(".yaml")]


def load_site(root: Path, config: SiteConfig, sources: Sources, parse_cache: dict[str, Any]) -> tuple[Site, dict]:
    """Read and validate every input in this process; raise InputError listing every problem.

    Returns the site and the new parse cache (entries for files that parsed and validated).
    """
    loader = SiteLoader(root, config, sources, parse_cache)
    site = loader.frame()
    loader.merge(site, [loader.load_share(material_files(sources), output_files(sources))])
    return site, loader.new_cache
