"""The writer never writes outside the output folder, whatever a path or a symlink says."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.errors import InputError
from generator.writer import OutputWriter, safe_join
from tests.conftest import run_site


@pytest.mark.parametrize("rel", ["../x.html", "/etc/x", "a//b.html", "a/./b.html", "a\\b.html", "a/../../b",
                                 "x\x00.html", ""])
def test_paths_that_are_not_plain_names_are_refused(tmp_path: Path, rel: str) -> None:
    with pytest.raises(InputError, match="refusing to write outside the site"):
        safe_join(tmp_path, rel)
    fresh = OutputWriter(tmp_path / "build")
    fresh.start_fresh()
    with pytest.raises(InputError, match="refusing to write outside the site"):
        fresh.write(rel, b"x")
    assert list(tmp_path.rglob("*.html")) == []


def test_a_symlinked_output_folder_that_leads_outside_is_refused(site_small: Path, tmp_path: Path) -> None:
    assert run_site(site_small, "build", "--frozen").exit_code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    metal = site_small / "build/metal"
    for page in metal.rglob("*"):
        if page.is_file():
            page.unlink()
    for folder in sorted(metal.rglob("*"), reverse=True):
        folder.rmdir()
    metal.rmdir()
    metal.symlink_to(outside, target_is_directory=True)
    result = run_site(site_small, "build", "--frozen")
    assert result.exit_code == 2, result.output
    assert "output path leaves the site" in result.output and "metal/" in result.output
    assert list(outside.rglob("*")) == []  # nothing was written through the link


def test_files_whose_bytes_are_already_there_are_not_rewritten(tmp_path: Path) -> None:
    writer = OutputWriter(tmp_path)
    writer.write("a/index.html", b"<p>one</p>")
    writer.write("a/index.html", b"<p>one</p>")
    writer.write("b.html", b"two")
    writer.write("b.html", b"two, longer")
    writer.write("b.html", b"tw")
    assert writer.written == ["a/index.html", "b.html", "b.html", "b.html"]
    assert (tmp_path / "b.html").read_bytes() == b"tw"
