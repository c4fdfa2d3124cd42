"""`build()`: the one function behind `site build`, `site regen` and `site watch`.

config -> sources and content (validated) -> graph (what is stale and why) -> producers (LLM chain
for stale LLM components, templates for pages) -> writer -> build state (recorded only after
success).
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .config import SiteConfig, check_base_url, load_config
from .errors import FrozenStale, InputError, Problem
from .hashing import short
from .lock import site_lock
from .sources import Sources
from .state import STATE_FORMAT, BuildState, Memo, NodeRecord, load_memo, load_state, save_state
from .writer import OutputWriter, atomic_write, safe_join

if TYPE_CHECKING:  # the no-op path never imports jinja2, the graph or the content loader
    from .content import Site
    from .graph import ComponentNode, Graph, GraphBuilder, OutputNode
    from .render import Renderer
    from .shares import SharesDone

CACHE_DIR = ".cache"


@dataclass(frozen=True)
class Regen:
    """`site regen`: fresh samples for these components even if fresh."""

    component: str
    materials: tuple[str, ...] = ()
    category: str | None = None
    force: bool = False  # also overwrite hand-edited or pinned outputs


@dataclass(frozen=True)
class BuildOptions:
    frozen: bool = False
    quiet: bool = False
    chain: tuple[str, ...] | None = None
    base_url: str | None = None
    regen: Regen | None = None
    progress: bool = False  # show a live progress bar while generating
    jobs: int | None = None  # concurrent LLM requests per provider for this run (overrides site.yaml)
    batch: bool = False  # send stale LLM requests through the Groq Batch API (SPEC §4.4)
    no_wait: bool = False  # with batch: submit and return; a later --batch build ingests
    lock_wait: float = 60.0
    workers: int | None = None  # processes for per-material work (keys, pages): None = one per core
    strict: bool = False  # model text or nothing: no template-tier fill (also llm.strict in site.yaml)


@dataclass
class BuildReport:
    out_dir: Path
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)  # output node ids rendered
    unchanged: int = 0  # output nodes whose key had not changed (skipped)
    produced: list[str] = field(default_factory=list)  # "component:slug" generated or regenerated
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stale_llm: list[str] = field(default_factory=list)  # "component:slug: reason"
    llm: Any = None  # generator.llm.ProduceReport when the chain ran
    elapsed: float = 0.0
    noop: bool = False
    # The build's loaded data (site, graph, memo...), kept referenced: the console script exits
    # without freeing a million objects one by one (a third of a second at 10,000 materials).
    retained: Any = field(default=None, repr=False, compare=False)


def build(root: Path, options: BuildOptions = BuildOptions(), say: Callable[[str], None] = lambda _: None) -> BuildReport:
    root = Path(root).resolve()
    if options.base_url:
        check_base_url(options.base_url)
    cache_dir = root / CACHE_DIR
    with site_lock(cache_dir, options.lock_wait, say), _collector_paused():
        return _Build(root, cache_dir, options, say).run()


@contextmanager
def _collector_paused():
    """A build allocates hundreds of thousands of long-lived objects (sources, site, graph,
    memo) and little cyclic garbage; the collector rescanning them all was a third of a
    one-material edit at 10k materials. Pause it for the build, restore it afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _collector_running():
    """The opposite, while calling models: network clients and asyncio leave cyclic garbage
    with every request (40,000 requests grew a paused build to 1.9 GB). The long-lived objects
    loaded so far are frozen first, so the collector does not rescan them."""
    paused = not gc.isenabled()
    gc.freeze()
    gc.enable()
    try:
        yield
    finally:
        if paused:
            gc.disable()
        gc.unfreeze()


class _Build:
    def __init__(self, root: Path, cache_dir: Path, options: BuildOptions, say: Callable[[str], None]):
        self.root = root
        self.cache_dir = cache_dir
        self.options = options
        self.say = say
        self.started = time.perf_counter()
        self.fingerprints: dict[str, str | None] = {}  # LLM key -> inputs fingerprint, for output files
        self.parse_cache: dict[str, Any] = {}
        self.facts: Any = None  # llm.validators.SiteFacts, made when the first request is

    # -- phases --------------------------------------------------------------------------------

    def run(self) -> BuildReport:
        state = load_state(self.cache_dir)
        config_schema = state.config[1].material_schema if state.config else None
        sources = Sources(self.root, state.files, extra=(config_schema,) if config_schema else ())
        site_config = self._config(sources, state)
        config = site_config.with_base_url(self.options.base_url)
        out_dir = self.root / config.output_dir
        report = BuildReport(out_dir=out_dir)
        options_sig = short([config.base_url, config.output_dir, STATE_FORMAT])
        writer = OutputWriter(out_dir)

        if self._is_noop(sources, state, options_sig, writer):
            report.noop = True
            report.stale_llm = list(state.stale_llm)
            report.warnings = list(state.warnings)
            return self._finish(report)

        memo = load_memo(self.cache_dir, state)
        try:
            site, renderer, builder, shares, graph, new_nodes = self._build(config, sources, state, memo, writer,
                                                                             report)
        except BaseException:
            writer.discard()  # a first build that failed leaves no half-built output behind
            raise
        writer.publish()

        fresh_parts = {n.id: n.parts for n in graph.components.values()  # None: not recomputed
                       if n.kind == "llm" and n.status == "fresh" and n.key and n.parts is not None}
        save_state(self.cache_dir, BuildState(
            files=sources.record(), nodes=new_nodes, options=options_sig, stale_llm=tuple(report.stale_llm),
            pending_llm=any(n.needs_production or n.status == "blocked" for n in graph.components.values()),
            warnings=tuple(report.warnings), config=(sources.sha("site.yaml"), site_config)),
            Memo(parse_cache=self.parse_cache, keys=graph.memo, template_refs=renderer.refs_memo,
                 global_sig=builder.global_sig),
            memo.parts.with_updates(fresh_parts))
        report.retained = (state, sources, memo, site, renderer, builder, shares, graph, new_nodes, self)
        return self._finish(report)

    def _build(self, config: SiteConfig, sources: Sources, state: BuildState, memo: Memo, writer: OutputWriter,
               report: BuildReport) -> tuple[Site, Renderer, GraphBuilder, SharesDone, Graph, dict[str, NodeRecord]]:
        """Load, produce and render: every file the build writes, not yet published."""
        site, renderer, builder, shares = self._load(config, sources, state, memo, writer)
        graph, others = shares.alongside

        if not self.options.frozen:
            graph = self._produce(site, renderer, builder, graph, report)
        if any(out.kept for out in site.outputs.values()):  # a person's edits: checked, kept, warned about
            from .review import kept_output_warnings

            report.warnings.extend(kept_output_warnings(site, self._facts(site)))

        for node in graph.components.values():
            if node.kind != "llm" or node.status == "fresh":
                continue
            if node.status == "kept":  # reviewed by a person: warn, but --frozen accepts it
                report.warnings.append(f"{node.id}: {'; '.join(node.reasons)}")
                continue
            report.stale_llm.append(f"{node.id}: {node.status}: {'; '.join(node.reasons)}")
            if node.status in ("missing", "blocked"):
                report.warnings.append(f"{node.id}: no output yet; its page is built without it")

        new_nodes = self._render(site, renderer, graph, state, writer, report, {**shares.pages, **others},
                                 shares.written)
        for rel in sorted(state.owned_outputs() - {o for r in new_nodes.values() for o in r.outputs}):
            writer.remove(rel)
        report.written, report.removed = writer.written, writer.removed
        return site, renderer, builder, shares, graph, new_nodes

    def _finish(self, report: BuildReport) -> BuildReport:
        report.elapsed = time.perf_counter() - self.started
        if self.options.frozen and report.stale_llm:
            raise _frozen_error(report)
        return report

    def _config(self, sources: Sources, state: BuildState) -> SiteConfig:
        """site.yaml, re-validated only when its bytes changed."""
        if not sources.exists("site.yaml"):
            raise InputError(f"no site.yaml in {self.root}: is this a site? (`site init DIR` makes one)")
        sha = sources.sha("site.yaml")
        if state.config is not None and state.config[0] == sha:
            config = state.config[1]
        else:
            config = load_config(self.root, sources.read_text("site.yaml"))
        if config.material_schema:
            sources.add(config.material_schema)
        return config

    def _is_noop(self, sources: Sources, state: BuildState, options_sig: str, writer: OutputWriter) -> bool:
        if self.options.regen or not state.nodes or state.options != options_sig or sources.stat_changed():
            return False
        if state.pending_llm and not self.options.frozen:
            return False  # missing or stale LLM outputs: try the providers again
        return all(writer.exists(rel) for rel in state.owned_outputs())

    def _load(self, config: SiteConfig, sources: Sources, state: BuildState, memo: Memo,
              writer: OutputWriter) -> tuple[Site, Renderer, GraphBuilder, SharesDone]:
        """Load and validate the site; with it, in shares over the cores when there is much to
        do, every material's keys and the stale pages whose LLM outputs are final."""
        from .content import SiteLoader, material_files, output_files
        from .graph import GraphBuilder
        from .render import Renderer
        from .shares import planned_materials, run_shares

        loader = SiteLoader(self.root, config, sources, memo.parse_cache)
        site = loader.frame()
        if loader.problems:  # no renderer for a broken frame: report it with every material's problems
            loader.merge(site, [loader.load_share(material_files(sources), output_files(sources))])
        renderer = Renderer(site, self.cache_dir / "jinja", memo.template_refs)
        unchecked = renderer.unchecked_templates()  # before the builder's signatures mark them checked
        builder = GraphBuilder(site, renderer, state.nodes, memo, writer.exists)
        planned = planned_materials(site, memo.global_sig, builder, writer.out_dir.is_dir())
        frozen, regen = self.options.frozen, self.options.regen

        def ready(nodes: dict[str, ComponentNode]) -> bool:
            """A page can be rendered now unless it waits for an LLM output to be produced."""
            return frozen or (regen is None and all(n.kind == "static" or n.status in ("fresh", "kept")
                                                    for n in nodes.values()))

        def while_rendering(computed: dict[str, tuple]) -> tuple[Graph, dict]:
            """The graph, and the stale pages other than materials' (listings, sitemap...: made
            of material summaries, which no LLM output changes), rendered here meanwhile."""
            graph = self._graph(builder, computed=computed)
            return graph, {node.id: (node.key, *self._render_node(renderer, writer, node, site, graph.components))
                           for node in graph.outputs.values() if node.stale and node.kind != "material"}

        # Templates are checked while the shares load: workers render them from the bytecode
        # cache it fills, and a syntax error stops the build before any page is written.
        shares = run_shares(loader, site, builder, writer, partial(self._render_node, renderer, writer), ready,
                            self.options.workers, planned, while_loading=partial(renderer.check_templates, unchecked),
                            while_rendering=while_rendering)
        self.parse_cache = loader.new_cache  # outputs stored by this build are added as they come
        return site, renderer, builder, shares

    def _graph(self, builder: GraphBuilder, previous: Graph | None = None, changed: set[str] = frozenset(),
               computed: dict[str, tuple] | None = None) -> Graph:
        """The graph; with `previous` (this build's), only the `changed` materials are redone."""
        from .render import TemplateFailure

        try:
            return builder.build(previous, changed, computed)
        except TemplateFailure as exc:
            raise InputError("a prompt template failed", [exc.problem]) from None

    # -- LLM components ------------------------------------------------------------------------

    def _regen_selection(self, site: Site) -> set[tuple[str, str]]:
        regen = self.options.regen
        if regen is None:
            return set()
        if regen.component not in site.components or site.components[regen.component].kind != "llm":
            llm = ", ".join(sorted(n for n, c in site.components.items() if c.kind == "llm"))
            raise InputError(f"--component {regen.component!r} is not an llm component (llm components: {llm})")
        unknown = [s for s in regen.materials if s not in site.materials]
        if unknown:
            raise InputError(f"unknown material slug(s): {', '.join(unknown)}")
        if regen.category and regen.category not in site.config.categories:
            raise InputError(f"unknown category {regen.category!r}")
        chosen = set()
        for slug, m in site.materials.items():
            if regen.component not in m.components:
                continue
            if regen.materials and slug not in regen.materials:
                continue
            if regen.category and m.category != regen.category:
                continue
            out = site.outputs.get((regen.component, slug))
            if out is not None and out.kept and not regen.force:
                self.say(f"skipping {regen.component}:{slug}: kept ({'pinned' if out.pinned else 'edited by hand'}); "
                         "use --force to overwrite")
                continue
            chosen.add((regen.component, slug))
        return chosen

    def _produce(self, site: Site, renderer: Renderer, builder: GraphBuilder, graph: Graph,
                 report: BuildReport) -> Graph:
        regen = self._regen_selection(site)
        wanted = lambda g: [n for n in g.components.values()
                            if n.needs_production or ((n.component, n.slug) in regen and n.key is not None)]
        if not wanted(graph):
            return graph
        from .llm import AnswerCache, LLMSession, LLMSettings, produce_sync

        from os import environ
        settings = LLMSettings.from_config(site.config.llm, environ, list(self.options.chain) if self.options.chain else None,
                                           strict=self.options.strict)
        if self.options.jobs:
            from dataclasses import replace

            settings = replace(settings, providers={name: replace(p, concurrency=self.options.jobs)
                                                    for name, p in settings.providers.items()})
        cache = AnswerCache(self.cache_dir / "llm")
        session = LLMSession(settings)  # health checks and rate-limit windows last the whole build
        progress = None
        if self.options.progress and not self.options.quiet:
            from .llm.progress import Progress
            progress = Progress()
        reports = []
        done: set[tuple[str, str]] = set()
        try:
            # One pass per dependency level: a component's messages need its dependencies' outputs.
            while True:
                todo = [n for n in wanted(graph) if (n.component, n.slug) not in done]
                ready = [n for n in todo if not any(
                    dep_node.needs_production or ((dep_node.component, dep_node.slug) in regen
                                                  and (dep_node.component, dep_node.slug) not in done)
                    for dep in site.components[n.component].depends_on
                    if (dep_node := graph.components.get((dep, n.slug))) is not None)]
                if not ready:
                    break
                requests = [self._request(site, renderer, n, (n.component, n.slug) in regen) for n in ready]
                done.update((n.component, n.slug) for n in ready)
                store = lambda req, ans: self._store(site, req, ans, report)  # noqa: E731
                with _collector_running():
                    live, waiting = self._batch(requests, settings, cache, store, progress, reports, report)
                    if live:
                        reports.append(produce_sync(live, settings, cache, store, progress, session=session))
                graph = self._graph(builder, graph, {n.slug for n in ready})
                if waiting:
                    break  # the next level needs this level's answers: a later `site build --batch`
        finally:
            cache.close()
        report.llm = _merge_reports(reports)
        if report.llm is not None:
            from .llm.report import save_rejections

            save_rejections(self.cache_dir, report.llm.rejections)
        for request, reason in getattr(report.llm, "failed", []):
            report.failures.append(f"{request.component}:{request.slug}: {reason}")
        return graph

    def _batch(self, requests: list, settings: Any, cache: Any, store: Callable, progress: Any,
               reports: list, report: BuildReport) -> tuple[list, bool]:
        """With --batch, send requests through the Groq Batch API first; returns the requests
        left for the live chain, and whether a batch is still running. Without --batch, requests
        already in a running batch are never also sent live."""
        from .llm.batch import pending_keys, run_batch

        batch_dir = self.cache_dir / "batch"
        if not self.options.batch:
            pending = pending_keys(batch_dir)
            if not pending:
                return requests, False
            skipped = [r for r in requests if r.key in pending]
            if skipped:
                report.warnings.append(f"{len(skipped)} request(s) are in a running batch and were not sent "
                                       "live: `site build --batch` ingests it, `site batch cancel` drops it")
            return [r for r in requests if r.key not in pending], bool(skipped)
        outcome = run_batch(requests, settings, cache, store, batch_dir, wait=not self.options.no_wait,
                            progress=progress, say=self.say)
        reports.append(outcome.report)
        if outcome.pending:
            report.warnings.append("batch submitted and still running: run `site build --batch` later to ingest it")
            return [], True  # nothing goes live while its batch may still answer it
        return list(outcome.leftovers), False

    def _request(self, site: Site, renderer: Renderer, node: ComponentNode, fresh: bool):
        from .llm import LLMRequest

        component = site.components[node.component]
        material = site.materials[node.slug]
        deps = site.dependency_outputs(component, node.slug)
        d = component.definition
        offline = (lambda: renderer.offline(component, material, deps)) if "offline" in d else None
        self.fingerprints[node.key] = node.fingerprint
        return LLMRequest(key=node.key, component=component.name, slug=material.slug,
                          messages=renderer.messages(component, material, deps), schema=d["schema"],
                          params=d.get("params", {}), models=d.get("models", {}),
                          validators=self._validators(site, d), material=material.data,
                          offline=offline, fresh=fresh)

    def _validators(self, site: Site, definition: dict) -> tuple[dict, ...]:
        """A component's validators with the defaults, and what the site knows (made once a build)."""
        from .llm.validators import effective_validators

        return effective_validators(definition.get("validators"), self._facts(site))

    def _facts(self, site: Site) -> Any:
        from .llm.validators import SiteFacts

        if self.facts is None:
            self.facts = SiteFacts.of_site(site)
        return self.facts

    def _store(self, site: Site, request: Any, answer: Any, report: BuildReport) -> None:
        """Persist an accepted answer the moment it arrives (SPEC §3: a kill loses no paid call)."""
        from . import yamlio
        from .content import GeneratedOutput, Lazy
        from .hashing import output_sha

        rel = site.output_path(request.component, request.slug)
        record = {
            "component": request.component, "material": request.slug, "key": request.key,
            "provider": answer.provider, "model": answer.model,
            "generated_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            "usage": dict(answer.usage), "inputs_sha256": self.fingerprints.get(request.key),
            "output_sha256": output_sha(answer.output), "output": answer.output,
        }
        data = ("# Generated by `site`; review before committing. Editing `output` by hand keeps it:\n"
                "# builds will not overwrite it (set `pinned: true` to keep it explicitly).\n"
                + yamlio.dump(record)).encode("utf-8")
        atomic_write(safe_join(self.root / "content", rel[len("content/"):]), data)
        site.sources.update(rel, data)
        # What the loader would have memoised, so the next build need not parse it again.
        self.parse_cache[rel] = ("", (request.key, False, False, record["inputs_sha256"]))
        site.outputs[(request.component, request.slug)] = GeneratedOutput(
            component=request.component, slug=request.slug, file=rel, key=request.key, hand_edited=False,
            pinned=False, inputs_sha256=self.fingerprints.get(request.key), lazy=Lazy(answer.output))
        report.produced.append(f"{request.component}:{request.slug}")

    # -- pages ---------------------------------------------------------------------------------

    @staticmethod
    def _render_node(renderer: Renderer, writer: OutputWriter, node: OutputNode, site: Site,
                     components: dict) -> tuple[list[str], str | None]:
        """Render one node and write its files: (files, failure)."""
        from .pages import render_output
        from .render import TemplateFailure

        try:
            files = render_output(node, site, renderer, components)
        except TemplateFailure as exc:
            return [], f"{node.id}: {exc.problem}"
        for rel, data in files.items():
            writer.write(rel, data)
        if node.kind == "material":  # written: its parsed data need not stay in memory
            site.release(node.subject)
        return list(files), None

    def _render(self, site: Site, renderer: Renderer, graph: Graph, state: BuildState, writer: OutputWriter,
                report: BuildReport, rendered: dict[str, tuple], written_elsewhere: set[str]) -> dict[str, NodeRecord]:
        """Render what is stale and not `rendered` yet (node id -> (key, files, failure), by the
        shares or alongside them); the state's node records."""
        records: dict[str, NodeRecord] = {}
        queued: list[str] = []
        for node in graph.outputs.values():
            done = rendered.get(node.id)
            if done is not None and done[0] == node.key:  # rendered with the shares
                files, failure = done[1], done[2]
            elif not node.stale:
                records[node.id] = NodeRecord(node.key, node.outputs)
                report.unchanged += 1
                continue
            else:
                files, failure = self._render_node(renderer, writer, node, site, graph.components)
            if failure is not None:
                report.failures.append(failure)
                old = state.nodes.get(node.id)
                if old is not None:  # keep owning the old file; retried next build
                    records[node.id] = NodeRecord("failed", old.outputs)
                continue
            queued += files
            report.rendered.append(node.id)
            records[node.id] = NodeRecord(node.key, node.outputs)
        # Files whose bytes were already there were not written; the shares' included.
        written = set(writer.written) | written_elsewhere
        writer.written = [rel for rel in queued if rel in written]
        return records


def _stale_problem(stale_line: str) -> Problem:
    """"caption:oak: stale: field 'x' changed" -> a Problem on the output file."""
    component, slug, why = stale_line.split(":", 2)
    return Problem(f"content/components/{component}/{slug}.yaml", why.strip(), None, f"{component}:{slug}")


def _merge_reports(reports: list) -> Any:
    if not reports:
        return None
    merged = reports[0]
    for other in reports[1:]:
        merged = merged.merge(other)
    return merged


def _frozen_error(report: BuildReport) -> FrozenStale:
    error = FrozenStale(f"--frozen: {len(report.stale_llm)} LLM component(s) are stale or missing "
                        "(run `site build` with a provider, review and commit content/components/)",
                        [_stale_problem(s) for s in report.stale_llm])
    error.report = report  # what was built anyway (watch mode reloads just those pages)
    return error
