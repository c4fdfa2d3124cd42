"""Bad input: one clear message per problem (file, line, field), exit 2, nothing damaged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import run_site, tree_digest


@pytest.fixture
def site(site_small: Path) -> Path:
    result = run_site(site_small, "build", "--frozen")
    assert result.exit_code == 0, result.output
    return site_small


def aluminum(root: Path) -> Path:
    return root / "materials/metal/aluminum.yaml"


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def fails_cleanly(root: Path, *expected: str) -> str:
    """Build must exit 2 naming every expected fragment, with build/ and content/ untouched."""
    before = (tree_digest(root / "build"), tree_digest(root / "content"))
    result = run_site(root, "build")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in expected:
        assert fragment in result.output, f"{fragment!r} not in:\n{result.output}"
    assert (tree_digest(root / "build"), tree_digest(root / "content")) == before
    return result.output


def test_invalid_yaml(site: Path) -> None:
    replace(aluminum(site), "category: metal", "category: [metal")
    fails_cleanly(site, "materials/metal/aluminum.yaml:", "invalid YAML")


def test_schema_violation_names_field_and_line(site: Path) -> None:
    replace(aluminum(site), "density: {value: 2.7", "density: {value: heavy")
    line = line_of(aluminum(site), "density:")
    fails_cleanly(site, f"materials/metal/aluminum.yaml:{line} [properties.density", "heavy")


def test_missing_required_field(site: Path) -> None:
    replace(aluminum(site), "name: Aluminum\n", "")
    fails_cleanly(site, "materials/metal/aluminum.yaml", "[name]", "missing required field 'name'")


def test_unknown_component(site: Path) -> None:
    replace(aluminum(site), "components: [", "components: [faq, ")
    line = line_of(aluminum(site), "components:")
    fails_cleanly(site, f"materials/metal/aluminum.yaml:{line} [components.0]", "unknown component 'faq'")


def test_dependency_cycle(site: Path) -> None:
    replace(site / "components/frontmatter/component.yaml", "depends_on: []", "depends_on: [tags]")
    fails_cleanly(site, "dependency cycle: frontmatter -> tags -> frontmatter")


def test_duplicate_slug(site: Path) -> None:
    copy = site / "materials/metal/aluminium.yaml"
    shutil.copy(aluminum(site), copy)
    replace(copy, "name: Aluminum", "name: Aluminium\nslug: aluminum")
    fails_cleanly(site, "materials/metal/aluminium.yaml", "duplicate slug 'aluminum'", "aluminum.yaml")


def test_missing_template(site: Path) -> None:
    (site / "components/table/view.html.j2").unlink()
    fails_cleanly(site, "components/table/component.yaml", "[template]", "missing template file 'view.html.j2'")


def test_missing_layout(site: Path) -> None:
    (site / "layouts/category.html").unlink()
    fails_cleanly(site, "layouts/category.html", "missing layout")


@pytest.mark.parametrize("rel, before, broken, message", [
    ("layouts/index.html", None, "{% if %}", "template syntax error"),
    # It parses (a template's signature is taken before it is compiled) but does not compile.
    ("layouts/base.html", "</body>", "{{ page.title | no_such_filter }}", "no_such_filter"),
    # Prompt templates are only parsed up front (compiled when first used): still caught first.
    ("components/caption/prompt.j2", None, "{% for x in %}", "template syntax error"),
], ids=["layout-syntax", "layout-unknown-filter", "prompt-syntax"])
def test_template_error_names_file_and_line(site: Path, rel: str, before: str | None, broken: str,
                                            message: str) -> None:
    path = site / rel
    text = path.read_text()
    path.write_text(text.replace(before, f"{broken}\n{before}") if before else f"{text}\n{broken}\n")
    fails_cleanly(site, f"{rel}:{line_of(path, broken)}", message)


def test_yaml_duplicate_key_is_an_error_with_its_line(site: Path) -> None:
    replace(aluminum(site), "name: Aluminum\n", "name: Aluminum\nname: Aluminium\n")
    line = line_of(aluminum(site), "name: Aluminium")
    fails_cleanly(site, f"materials/metal/aluminum.yaml:{line}", "duplicate mapping key")


@pytest.mark.parametrize("slug", ["../../escape", "a/b", "UPPER", "..", "x y"])
def test_slug_that_tries_to_escape(site: Path, slug: str) -> None:
    replace(aluminum(site), "name: Aluminum\n", f"name: Aluminum\nslug: {slug!r}\n")
    fails_cleanly(site, "materials/metal/aluminum.yaml", "[slug]")
    assert not (site.parent / "escape").exists()


def test_output_dir_outside_the_site(site: Path) -> None:
    replace(site / "site.yaml", "output_dir: build", "output_dir: ../outside")
    fails_cleanly(site, "site.yaml:", "[output_dir]", "inside the site")
    assert not (site.parent / "outside").exists()


def test_every_problem_is_reported_at_once(site: Path) -> None:
    replace(aluminum(site), "category: metal", "category: metals")
    replace(site / "materials/wood/oak.yaml", "name: Oak", "name: 42")
    (site / "components/tags/component.yaml").write_text("kind: llm\n")
    output = fails_cleanly(site, "unknown category 'metals'", "materials/wood/oak.yaml", "[name]",
                           "components/tags/component.yaml")
    assert output.count("\n  ") >= 3


def test_every_site_yaml_problem_is_reported_at_once(site: Path) -> None:
    replace(site / "site.yaml", "language: en", "language: 'english please'")
    replace(site / "site.yaml", "title: ", "colour: blue\ntitle: ")
    fails_cleanly(site, "site.yaml:", "[language]", "unknown field(s)", "'colour'")
