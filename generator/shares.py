"""A build's per-material work, in shares of the site spread over the cores.

Nearly all of a large site is its material files and their generated outputs, and nearly all
of a cold build is per material: parse and validate its files, compute its nodes' keys, render
its page. When many materials have work to do, each core gets a worker process (forkpool) and
a share: the files of every N-th material file name.
1. Each worker loads its share (content.SiteLoader.load_share) and reports summaries.
2. The parent merges the reports (content.SiteLoader.merge): slugs unique, references known,
   every problem of the site raised at once, before anything is written. It makes the
   generated outputs' objects during step 3.
3. Each worker computes its share's node keys (graph.GraphBuilder.material_result); a prompt
   that fails to render is reported, with every other one, before any page is written.
4. Each worker renders and writes its share's stale material pages, unless one waits for an
   LLM output to be produced.
In a first build (no output folder yet) pages go to a staging folder that only a successful
build publishes, so the workers do not wait for the parent's checks in steps 2 and 3: bad
input still publishes nothing, and the build raises it all the same.

The parent gets back keys, pages and files written, never a share's parsed data: at 10,000
materials no process holds more than its share of them. With one share (small sites, most
incremental builds) the same steps run in this process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .content import material_files, output_files
from .errors import InputError, Problem
from .forkpool import Step, fork_steps, worker_count
from .render import TemplateFailure

if TYPE_CHECKING:
    from .content import ShareLoad, Site, SiteLoader
    from .graph import ComponentNode, GraphBuilder, OutputNode
    from .writer import OutputWriter

# (files written, failure message or None) of rendering one output node
Rendered = tuple[list[str], "str | None"]


@dataclass
class Share:
    index: int
    material_files: list[str] = field(default_factory=list)
    output_files: list[str] = field(default_factory=list)


@dataclass
class SharesDone:
    computed: dict[str, tuple] = field(default_factory=dict)  # slug -> (*material_result(), page node)
    pages: dict[str, tuple[str, list[str], str | None]] = field(default_factory=dict)  # id -> (key, files, failure)
    written: set[str] = field(default_factory=set)  # files whose bytes changed
    alongside: Any = None  # what while_rendering() returned


def planned_materials(site: Site, previous_sig: str | None, builder: GraphBuilder, out_exists: bool) -> int:
    """How many materials this build will likely load, key or render: all of them when what
    every key or page depends on changed or the output folder is gone, else those with a
    file whose stat changed."""
    files = material_files(site.sources)
    if not out_exists or previous_sig != builder.global_sig:
        return len(files)
    changed = {_stem(rel) for rel in (*files, *output_files(site.sources)) if not site.sources.stat_unchanged(rel)}
    return len(changed)


def split(site: Site, count: int) -> list[Share]:
    """`count` shares; a material file and its generated outputs share a file name, and so a share."""
    if count == 1:
        return [Share(0, material_files(site.sources), output_files(site.sources))]
    shares = [Share(index) for index in range(count)]
    owner: dict[str, int] = {}
    for rel in material_files(site.sources):
        index = owner.setdefault(_stem(rel), len(owner) % count)
        shares[index].material_files.append(rel)
    for rel in output_files(site.sources):
        index = owner.setdefault(_stem(rel), len(owner) % count)
        shares[index].output_files.append(rel)
    return shares


def run_shares(loader: SiteLoader, site: Site, builder: GraphBuilder, writer: OutputWriter,
               render_page: Callable[[OutputNode, Site, dict[str, ComponentNode]], Rendered],
               ready: Callable[[dict[str, ComponentNode]], bool], workers: int | None, planned: int,
               while_loading: Callable[[], None], while_rendering: Callable[[dict[str, tuple]], Any]
               ) -> SharesDone:
    """Load, validate and merge every material and output file into `site`, compute every
    material's keys, and render the stale pages that are `ready` (their LLM outputs final).
    Raises InputError, before any page is written, for bad input or a failing prompt.

    This process's own work goes alongside: `while_loading()` (checking templates), then
    `while_rendering(every material's results)` (the graph, other pages), whose result is
    SharesDone.alongside."""
    count = worker_count(workers, planned)
    shares = split(site, count)
    held: dict[int, tuple[Site, dict[str, tuple]]] = {}  # what this process holds per share

    def load(share: Share, _: None) -> ShareLoad:
        return loader.load_share(share.material_files, share.output_files)

    outputs: list[tuple[str, tuple]] = []  # (file, metadata) of every output, once merged

    def merged(loads: list[ShareLoad]) -> list[None]:
        outputs[:] = loader.merge(site, loads, outputs_now=False)  # raises InputError: nothing published
        return [None] * len(shares)

    def outputs_merged() -> None:
        """While the workers compute keys: the outputs' objects, for the graph and the LLM chain."""
        site.outputs = loader.merge_outputs(outputs)

    def keys(share: Share, _: None) -> tuple[dict[str, tuple], list[Problem]]:
        view = loader.share_view(site, share.material_files, whole_site=len(shares) == 1)
        share_builder = builder.for_site(view)
        computed: dict[str, tuple] = {}
        problems = []
        for slug, material in view.materials.items():
            try:
                nodes, page_key, memo_entry = share_builder.material_result(material)
            except TemplateFailure as exc:
                problems.append(exc.problem)
                continue
            computed[slug] = (nodes, page_key, memo_entry, share_builder.material_page(material, page_key))
        held[share.index] = (view, computed)
        return computed, problems

    total = SharesDone()

    def checked(reports: list[tuple[dict[str, tuple], list[Problem]]]) -> list[None]:
        for computed, _ in reports:
            total.computed.update(computed)
        failed = [p for _, share_problems in reports for p in share_problems]  # one per material
        if failed:  # every failing prompt at once, and no page published
            raise InputError(f"prompts failed to render for {len(failed)} material(s)",
                             sorted(set(failed), key=lambda p: (p.file, p.line or 0, p.message)))
        return [None] * len(shares)

    def pages(share: Share, _: None) -> tuple[dict, set[str]]:
        view, computed = held.pop(share.index)
        rendered = {}
        for nodes, _, _, page in computed.values():
            if page.stale and ready(nodes):
                rendered[page.id] = (page.key, *render_page(page, view, nodes))
        return rendered, set(writer.written)

    def alongside() -> None:
        total.alongside = while_rendering(total.computed)

    # A first build writes into a staging folder that only a successful build publishes: its
    # workers go on from step to step while the parent still checks every share's files and
    # prompts. Any other build's workers wait for each check, so that bad input writes nothing.
    staged = writer.start_fresh()
    reports = fork_steps(shares, [Step(load, merged, while_loading, barrier=not staged),
                                  Step(keys, checked, outputs_merged, barrier=not staged),
                                  Step(pages, lambda reports: reports, alongside)])
    for rendered, written in reports:
        total.pages.update(rendered)
        total.written |= written
    return total


def _stem(rel: str) -> str:
    """"materials/metal/aluminum.yaml" -> "aluminum" (pathlib takes 10 µs: 0.5 s at 10,000 materials)."""
    return rel.rpartition("/")[2].rpartition(".")[0]
