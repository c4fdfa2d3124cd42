"""`site build` end to end: what lands in build/, determinism, golden pages, removals."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, copy_site, run_site, run_site_process, tree_digest

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_PAGES = ["index.html", "metal/index.html", "metal/aluminum/index.html", "about/index.html",
                "404.html", "sitemap.xml", "robots.txt"]


def test_example_site_builds_every_page(built_example: Path) -> None:
    out = built_example / "build"
    materials = list((REPO / "materials").rglob("*.yaml"))
    assert len(materials) == 109
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob("index.html"))
    categories = {"metal", "wood", "stone", "composite", "glass", "masonry", "ceramic", "semiconductor"}
    assert {p.split("/")[0] for p in pages if p.count("/") == 2} == categories
    assert len([p for p in pages if p.count("/") == 2]) == 109
    for extra in ("index.html", "about/index.html", "methodology/index.html", "sitemap.xml", "robots.txt",
                  "404.html", "assets/css/site.css"):
        assert (out / extra).is_file(), extra
    for cat in categories:
        assert (out / cat / "index.html").is_file()


def test_every_page_has_meta_and_material_pages_have_jsonld(built_example: Path) -> None:
    out = built_example / "build"
    for page in out.rglob("*.html"):
        html = page.read_text()
        assert re.search(r"<title>[^<]+</title>", html), page
        assert re.search(r'<meta name="description" content="[^"]+"', html), page
        assert 'property="og:title"' in html and 'property="og:url"' in html, page
        if page.name != "404.html":
            assert '<link rel="canonical" href="https://example.github.io/site/' in html, page
    aluminum = (out / "metal/aluminum/index.html").read_text()
    block = re.search(r'<script type="application/ld\+json">(.*?)</script>', aluminum, re.S).group(1)
    data = json.loads(block)
    assert data["@type"] == "Article" and data["about"]["name"] == "Aluminum"
    # Internal links carry base_url's sub-path.
    assert 'href="/site/metal/"' in aluminum


def test_same_inputs_give_the_same_bytes(built_example: Path, tmp_path: Path) -> None:
    other = copy_site(tmp_path / "again")
    assert run_site(other, "build", "--frozen").exit_code == 0
    assert tree_digest(other / "build") == tree_digest(built_example / "build")


def test_pages_rendered_on_two_cores_are_the_same_bytes(built_example: Path, tmp_path: Path) -> None:
    # A subprocess: the build forks its workers, which a test process with threads must not do.
    other = copy_site(tmp_path / "forked")
    done = run_site_process(other, "build", "--frozen", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "1 failed" not in done.stdout and "Traceback" not in done.stderr
    assert tree_digest(other / "build") == tree_digest(built_example / "build")
    again = run_site_process(other, "build", "--frozen", "--workers", "2")
    assert "nothing to do" in again.stdout  # the state the parent recorded covers the workers' pages
    # A page failing inside a worker is reported like any other, naming the template line;
    # the other pages are still built.
    view = other / "components/table/view.html.j2"
    view.write_text(view.read_text().replace('<th scope="row">', '<th scope="row">{{ (key|length) // 0 }}'))
    broken = run_site_process(other, "build", "--frozen", "--workers", "2")
    output = broken.stdout + broken.stderr
    assert broken.returncode == 1, output
    assert "components/table/view.html.j2:" in output and "ZeroDivisionError" in output
    assert "Traceback" not in output
    assert "0 rendered (15 unchanged)" in broken.stdout and "109 failed" in broken.stdout
    assert (other / "build/metal/aluminum/index.html").is_file()  # the last good page stays


def test_committed_outputs_spare_a_cold_build_every_prompt(tmp_path: Path) -> None:
    # Each committed output records a fingerprint of what its prompt is made from; when it is
    # current, a cold --frozen build trusts the recorded key and never renders (so never
    # compiles) a prompt template. A stale one (a changed prompt not regenerated, or a value
    # YAML reads back differently) shows up here as a compiled prompt.
    site = copy_site(tmp_path / "cold")
    shutil.rmtree(site / ".cache", ignore_errors=True)
    assert run_site(site, "build", "--frozen").exit_code == 0
    compiled = [p.name for p in (site / ".cache/jinja").glob("text-*/*")]
    assert compiled == []


def test_a_first_build_is_published_whole(site_small: Path) -> None:
    # With no build/ yet, the site is staged beside it and renamed into place at the end;
    # what a killed first build left there is discarded, never published.
    staging = site_small / ".build.staging"
    staging.mkdir()
    (staging / "leftover.html").write_text("from a killed build")
    assert run_site(site_small, "build", "--frozen").exit_code == 0
    assert not staging.exists()
    assert (site_small / "build/metal/aluminum/index.html").is_file()
    assert not (site_small / "build/leftover.html").exists()
    # Bad input on a first build leaves no staging folder and no build/ behind.
    fresh = copy_site(site_small.parent / "fresh", ["aluminum"])
    (fresh / "materials/metal/aluminum.yaml").write_text("name: [\n")
    assert run_site(fresh, "build", "--frozen").exit_code == 2
    assert not (fresh / "build").exists() and not (fresh / ".build.staging").exists()


@pytest.mark.parametrize("page", GOLDEN_PAGES)
def test_golden_pages(built_example: Path, page: str) -> None:
    """Built pages match the reviewed golden copies (UPDATE_GOLDEN=1 rewrites them)."""
    built = (built_example / "build" / page).read_text()
    golden = GOLDEN / page.replace("/", "__")
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(built)
    assert golden.is_file(), f"no golden copy of {page}: run with UPDATE_GOLDEN=1 and review it"
    assert built == golden.read_text()


def test_removed_material_disappears(site_small: Path) -> None:
    assert run_site(site_small, "build", "--frozen").exit_code == 0
    page = site_small / "build/wood/oak/index.html"
    assert page.is_file()
    next((site_small / "materials").rglob("oak.yaml")).unlink()
    result = run_site(site_small, "build", "--frozen")
    assert result.exit_code == 0, result.output
    assert not page.exists() and not page.parent.exists()
    assert "/wood/oak/" not in (site_small / "build/sitemap.xml").read_text()
    assert "oak" not in (site_small / "build/wood/index.html").read_text().lower()


def test_base_url_override_for_previews(site_small: Path) -> None:
    result = run_site(site_small, "build", "--frozen", "--base-url", "https://preview.example.net/pr-7")
    assert result.exit_code == 0, result.output
    html = (site_small / "build/metal/aluminum/index.html").read_text()
    assert 'rel="canonical" href="https://preview.example.net/pr-7/metal/aluminum/"' in html
    assert 'href="/pr-7/metal/"' in html
    # The override is for that build only: the next build uses site.yaml's base_url again.
    assert run_site(site_small, "build", "--frozen").exit_code == 0
    html = (site_small / "build/metal/aluminum/index.html").read_text()
    assert 'rel="canonical" href="https://example.github.io/site/metal/aluminum/"' in html


def edit_output(root: Path, component: str, slug: str, **changes: str) -> None:
    path = root / "content/components" / component / f"{slug}.yaml"
    record = yaml.safe_load(path.read_text())
    record["output"].update(changes)
    path.write_text(yaml.safe_dump(record, allow_unicode=True, sort_keys=False))


def test_llm_text_is_escaped_in_pages(site_small: Path) -> None:
    """LLM output is data: markup in it is escaped, JSON-LD cannot be broken out of."""
    edit_output(site_small, "caption", "aluminum", before="<script>alert(1)</script> Aluminum surface.")
    edit_output(site_small, "frontmatter", "aluminum", title="</script><!-- Aluminum")
    # Hand-edited outputs are kept; tags (which depend on frontmatter) are regenerated offline.
    result = run_site(site_small, "build", "--chain", "template")
    assert result.exit_code == 0, result.output
    assert "</script><!-- Aluminum" in (site_small / "content/components/frontmatter/aluminum.yaml").read_text()
    html = (site_small / "build/metal/aluminum/index.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    block = re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S).group(1)
    assert "<!--" not in block
    assert json.loads(block)["headline"] == "</script><!-- Aluminum"


def test_markdown_pages_render_raw_html_as_text(site_small: Path) -> None:
    page = site_small / "content/pages/about.md"
    page.write_text(page.read_text() + '\n<script>alert("x")</script>\n\n[home](/metal/)\n')
    assert run_site(site_small, "build", "--frozen").exit_code == 0
    html = (site_small / "build/about/index.html").read_text()
    assert '<script>alert("x")</script>' not in html and "&lt;script&gt;" in html
    assert 'href="/site/metal/"' in html  # site-absolute links get the deploy path


def test_noop_build_imports_neither_jinja_nor_provider_sdks(built_example: Path) -> None:
    code = ("import sys; from pathlib import Path; from generator.build import build, BuildOptions; "
            f"r = build(Path({str(built_example)!r}), BuildOptions(frozen=True, quiet=True)); "
            "print(r.noop, sorted(m for m in ('jinja2', 'ollama', 'groq', 'jsonschema', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True []"


def test_frozen_accepts_a_pinned_output_whose_inputs_changed(site_small: Path) -> None:
    path = site_small / "content/components/caption/oak.yaml"
    record = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**record, "pinned": True}, sort_keys=False, allow_unicode=True))
    material = site_small / "materials/wood/oak.yaml"
    material.write_text(material.read_text().replace("contaminants: [", "contaminants: [lichen, "))
    (site_small / "content/components/tags/oak.yaml").unlink()  # tags too: stale and not kept
    result = run_site(site_small, "build", "--frozen")
    assert result.exit_code == 3
    assert "tags/oak.yaml" in result.output and "caption/oak.yaml [" not in result.output
    assert "caption:oak: stale but kept (pinned)" in result.output
