"""Incremental builds do the least work: counted in what was rendered and written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from generator.build import BuildOptions, build
from tests.conftest import copy_site, run_site, tree_stats

FROZEN = BuildOptions(frozen=True, quiet=True)
# Edits of material data make LLM components stale: the offline template tier regenerates them.
OFFLINE = BuildOptions(chain=("template",), quiet=True)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = copy_site(tmp_path / "site", ["aluminum", "copper", "oak", "granite"])
    build(root, FROZEN)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def material(root: Path, slug: str) -> Path:
    return next((root / "materials").rglob(f"{slug}.yaml"))


def test_noop_build_writes_nothing(site: Path) -> None:
    before = tree_stats(site / "build")
    report = build(site, FROZEN)
    assert report.noop and report.rendered == [] and report.written == [] and report.removed == []
    assert tree_stats(site / "build") == before


def test_touch_without_change_renders_nothing(site: Path) -> None:
    path = material(site, "aluminum")
    path.write_text(path.read_text())  # new mtime, same bytes
    report = build(site, FROZEN)
    assert report.rendered == [] and report.written == []


def test_property_edit_renders_only_that_page(site: Path) -> None:
    path = material(site, "aluminum")
    text = path.read_text()
    new = re.sub(r"(density: \{value: )([0-9.]+)", lambda m: m.group(1) + "2.71", text, count=1)
    assert new != text
    path.write_text(new)
    report = build(site, OFFLINE)
    # The category page shows names and descriptions, the sitemap URLs: neither changed.
    assert report.rendered == ["page:aluminum"]
    assert report.written == ["metal/aluminum/index.html"]
    assert "2.71" in (site / "build/metal/aluminum/index.html").read_text()


def test_description_edit_also_renders_the_category_page(site: Path) -> None:
    edit(material(site, "copper"), "description: ", "description: Reddish. ")
    report = build(site, OFFLINE)
    assert sorted(report.rendered) == ["category:metal", "page:copper"]
    assert "sitemap.xml" not in report.written and "index.html" not in report.written


def test_layout_edit_renders_only_pages_using_it(site: Path) -> None:
    edit(site / "layouts/category.html", "{%- block content %}", "{%- block content %}<!-- edited -->")
    report = build(site, FROZEN)
    assert sorted(report.rendered) == sorted(f"category:{c}" for c in
                                             ["metal", "wood", "stone", "composite", "glass", "masonry",
                                              "ceramic", "semiconductor"])


def test_component_template_edit_renders_pages_using_it(site: Path) -> None:
    edit(site / "components/table/view.html.j2", "<table", "<table data-edited")
    report = build(site, FROZEN)
    assert sorted(report.rendered) == ["page:aluminum", "page:copper", "page:granite", "page:oak"]


def test_field_outside_inputs_leaves_component_untouched(site: Path) -> None:
    """`applications` feeds frontmatter/bullets/tags, not caption: caption stays fresh."""
    edit(material(site, "oak"), "applications: [", "applications: [boat decks, ")
    result = run_site(site, "status", "--no-health")
    assert result.exit_code == 0, result.output
    stale = {line.split()[0] for line in result.output.splitlines() if " oak " in f" {line} "}
    assert "caption" not in stale
    assert {"frontmatter", "bullets"} <= stale
    assert "field 'applications' changed" in result.output
    # --frozen refuses, listing exactly the stale ones, and keeps caption's output as it was.
    caption = (site / "content/components/caption/oak.yaml").read_bytes()
    result = run_site(site, "build", "--frozen")
    assert result.exit_code == 3
    assert "frontmatter:oak" in result.output and "caption:oak" not in result.output
    assert (site / "content/components/caption/oak.yaml").read_bytes() == caption


def test_deleted_output_file_is_rebuilt(site: Path) -> None:
    (site / "build/wood/oak/index.html").unlink()
    report = build(site, FROZEN)
    assert report.rendered == ["page:oak"]


def test_new_content_page_adds_nav_everywhere(site: Path) -> None:
    (site / "content/pages/contact.md").write_text("---\ntitle: Contact\ndescription: Write to us.\nmenu: true\n---\nHello.\n")
    report = build(site, FROZEN)
    assert "content:contact" in report.rendered and "page:aluminum" in report.rendered
    assert "sitemap" in report.rendered
    assert 'href="/site/contact/"' in (site / "build/metal/aluminum/index.html").read_text()
