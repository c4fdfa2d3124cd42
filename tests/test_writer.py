"""The writer never writes outside the output folder, whatever a path or a symlink says."""

from __future__ import annotations

import array
import copy
import fcntl
import os
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


def _top_folder_flag(folder: Path) -> bool | None:
    """Whether ext4's "top directory" flag (chattr +T) is set; None where flags are unsupported."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, 0x80086601, flags, True)  # FS_IOC_GETFLAGS
        return bool(flags[0] & 0x00020000)
    except OSError:
        return None
    finally:
        os.close(fd)


def test_a_first_build_is_made_in_a_random_subfolder_of_an_ext4_top_folder(site_small: Path, tmp_path: Path) -> None:
    # Right after `rm -rf build`, a journal-less ext4 would otherwise scan the inodes the old
    # build freed for each one the new build makes (5-10 s of kernel time at 10k pages).
    writers = [OutputWriter(tmp_path / name / "build") for name in ("one", "two")]
    for writer in writers:
        assert writer.start_fresh()
        writer.write("metal/iron/index.html", b"iron")
    staging = writers[0].target.parent
    assert staging == tmp_path / "one/.build.staging"
    assert writers[0].target.name != writers[1].target.name  # random: placed apart
    flag = _top_folder_flag(staging)
    writers[0].publish()
    assert (tmp_path / "one/build/metal/iron/index.html").read_bytes() == b"iron"
    assert not staging.exists()
    writers[1].discard()
    assert list((tmp_path / "two").iterdir()) == []
    assert run_site(site_small, "build", "--frozen").exit_code == 0
    assert sorted(p.name for p in site_small.iterdir() if "build" in p.name) == ["build"]
    if flag is None:
        pytest.skip("this file system has no inode flags (tmpfs?)")
    assert flag


def test_two_workers_writing_into_the_same_folders_keep_each_others_pages(tmp_path: Path) -> None:
    first = OutputWriter(tmp_path / "build")
    assert first.start_fresh()
    second = copy.deepcopy(first)  # what a forked worker holds
    first.write("metal/index.html", b"category")
    second.write("metal/iron/index.html", b"iron")  # "metal" is already there, with a file
    second.write("wood/oak/index.html", b"oak")
    first.write("wood/ash/index.html", b"ash")
    first.publish()
    build = tmp_path / "build"
    assert sorted(p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file()) == [
        "metal/index.html", "metal/iron/index.html", "wood/ash/index.html", "wood/oak/index.html"]
    assert [p.name for p in build.iterdir() if p.name.startswith(".")] == []
