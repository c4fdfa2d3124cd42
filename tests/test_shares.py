"""A build's per-material work in shares over worker processes (generator/shares.py, forkpool.py).

Builds that fork run as subprocesses: a test process has fake-server threads, and a fork copies
only the calling thread. forkpool's own tests fork plain functions, which touch no lock.
"""

from __future__ import annotations

import html
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generator.forkpool import Step, fork_steps
from tests.conftest import OFFLINE, copy_site, run_site, run_site_process, tree_digest


def test_steps_run_each_share_in_its_own_worker_and_merge_in_the_parent() -> None:
    parent = os.getpid()
    held = {}

    def load(share: int, _: None) -> tuple[int, int]:
        held[share] = share * 10  # left behind for the next step, in the share's worker
        return share, os.getpid()

    def merge_loads(reports: list) -> list[int]:
        assert [share for share, _ in reports] == [0, 1, 2]
        assert all(pid != parent for _, pid in reports)  # every share had a worker
        return [100 + share for share, _ in reports]

    def finish(share: int, given: int) -> int:
        return held[share] + given

    beside = []
    steps = [Step(load, merge_loads), Step(finish, lambda reports: reports, lambda: beside.append(os.getpid()))]
    assert fork_steps([0, 1, 2], steps) == [100, 111, 122]
    assert held == {}  # the parent itself did no share
    assert beside == [parent]  # while the workers finished


def test_a_worker_that_dies_has_its_steps_redone_by_the_parent() -> None:
    parent = os.getpid()

    def load(share: int, _: None) -> int:
        return share

    def finish(share: int, given: int) -> tuple[int, bool]:
        if share == 1 and os.getpid() != parent:
            os._exit(1)  # killed mid-build: no report
        return share + given, os.getpid() == parent

    done = fork_steps([0, 1, 2], [Step(load, lambda shares: [s * 2 for s in shares]),
                                  Step(finish, lambda reports: reports)])
    assert done == [(0, False), (3, True), (6, False)]  # share 1 was redone here, from its first step


def test_a_merge_that_fails_stops_every_worker() -> None:
    def refuse(reports: list) -> list:
        raise ValueError("bad input somewhere")

    with pytest.raises(ValueError, match="bad input somewhere"):
        fork_steps([0, 1], [Step(lambda share, _: share, refuse), Step(lambda share, _: 1 / 0, lambda r: r)])


def test_a_step_without_a_barrier_lets_workers_go_on_while_its_merge_runs() -> None:
    parent = os.getpid()
    merged = []

    def check(reports: list) -> list:
        merged.append(reports)
        return ["ignored", "ignored"]  # nothing is sent: the workers did not wait for it

    def render(share: int, given: None) -> tuple[int, None, bool]:
        return share, given, os.getpid() == parent

    done = fork_steps([0, 1], [Step(lambda share, _: share * 10, check, barrier=False),
                               Step(render, lambda reports: reports)])
    assert merged == [[0, 10]]
    assert done == [(0, None, False), (1, None, False)]

    def refuse(reports: list) -> list:
        raise ValueError("a prompt failed")

    with pytest.raises(ValueError, match="a prompt failed"):  # the merge still stops the workers
        fork_steps([0, 1], [Step(lambda share, _: share, refuse, barrier=False),
                            Step(lambda share, _: share, lambda reports: reports)])


@pytest.mark.parametrize("without_barrier", [1, 2])
def test_workers_go_on_while_the_parent_is_busy_before_reading_their_reports(tmp_path: Path,
                                                                               without_barrier: int) -> None:
    # A report larger than a pipe's buffer blocks its sender until the parent reads it; the
    # parent reads only after its own work of the step. Without a barrier, workers must not
    # wait for that, nor for an earlier report to be read before going past a later step: here
    # the parent's own work waits until both workers reached the last step.
    def reached(share: int, _: None) -> int:
        (tmp_path / f"reached-{share}").touch()
        return share

    seen, sizes = [], []

    def parent_work() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(list(tmp_path.glob("reached-*"))) < 2:
            time.sleep(0.01)
        seen.append(sorted(p.name for p in tmp_path.glob("reached-*")))

    def record(reports: list) -> None:
        sizes.append([len(r) for r in reports])

    steps = [Step(lambda share, _, mb=mb: bytes(mb << 20), record, parent_work if mb == 1 else None, barrier=False)
             for mb in range(1, without_barrier + 1)]
    done = fork_steps([0, 1], [*steps, Step(reached, lambda reports: reports)])
    assert seen == [["reached-0", "reached-1"]]
    assert sizes == [[mb << 20, mb << 20] for mb in range(1, without_barrier + 1)]  # whole, in order
    assert done == [0, 1]


def _stems_in_different_shares(root: Path) -> tuple[Path, Path]:
    """Two material files that two shares load (shares take every other file name)."""
    files = sorted(root.glob("materials/*/*.yaml"), key=lambda p: p.stem)
    return files[0], files[1]


@pytest.mark.parametrize("first_build", [False, True], ids=["rebuild", "first-build"])
def test_problems_in_every_share_are_reported_at_once_and_nothing_is_written(site_small: Path,
                                                                            first_build: bool) -> None:
    # A first build's workers go on rendering while the parent checks their files: the
    # problems must still stop it, with nothing published and no staging folder left.
    if not first_build:
        assert run_site(site_small, "build", "--frozen").exit_code == 0
    before = tree_digest(site_small / "build"), tree_digest(site_small / "content")
    first, second = _stems_in_different_shares(site_small)
    first.write_text(first.read_text().replace("category: ", "category: no-such-", 1))
    second.write_text(second.read_text() + "name: twice\n")
    result = run_site_process(site_small, "build", "--frozen", "--workers", "2")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"materials/{first.parent.name}/{first.name}" in output and "unknown category" in output
    assert f"materials/{second.parent.name}/{second.name}" in output and "duplicate" in output
    assert "Traceback" not in output
    assert (tree_digest(site_small / "build"), tree_digest(site_small / "content")) == before
    assert sorted(p.name for p in site_small.iterdir() if p.name.startswith(".build")) == []


def test_a_material_whose_outputs_another_share_loaded_shows_them(site_small: Path) -> None:
    # Shares split files by name; a material with its own `slug:` has outputs named by that
    # slug, which may fall in another worker's share. Its worker reads them itself.
    import yaml

    from generator.content import SiteLoader
    from generator.config import load_config
    from generator.shares import split
    from generator.sources import Sources

    moved = []
    for old in sorted(site_small.glob("materials/*/aluminum.yaml")):
        new = old.with_name(f"zz-{old.stem}.yaml")
        new.write_text(f"slug: {old.stem}\n" + old.read_text())
        old.unlink()
        moved.append((old.stem, new))
    sources = Sources(site_small, {})
    site = SiteLoader(site_small, load_config(site_small, sources.read_text("site.yaml")), sources, {}).frame()
    shares = split(site, 2)
    apart = [slug for slug, new in moved if not any(
        f"materials/{new.parent.name}/{new.name}" in s.material_files
        and f"content/components/caption/{slug}.yaml" in s.output_files for s in shares)]
    assert apart, "no material has its outputs in another share: the test proves nothing"

    result = run_site_process(site_small, "build", "--frozen", "--workers", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    for slug in apart:
        caption = yaml.safe_load((site_small / f"content/components/caption/{slug}.yaml").read_text())
        page = next((site_small / "build").glob(f"*/{slug}/index.html")).read_text()
        assert html.escape(caption["output"]["before"], quote=False).split()[0] in page
    assert "nothing to do" in run_site_process(site_small, "build", "--frozen", "--workers", "2").stdout


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("first_build", [False, True], ids=["rebuild", "first-build"])
def test_a_prompt_that_fails_to_render_stops_the_build_before_any_page(site_small: Path, workers: str,
                                                                       first_build: bool) -> None:
    # A first build's workers render into a staging folder while the prompts are still being
    # checked: the failure must leave neither an output folder nor the staging folder.
    if not first_build:
        assert run_site(site_small, "build", "--frozen").exit_code == 0
    before = tree_digest(site_small / "build"), tree_digest(site_small / "content")
    prompt = site_small / "components/caption/prompt.j2"
    prompt.write_text(prompt.read_text() + "\n{{ (material.name | length) // 0 }}\n")
    line = len(prompt.read_text().splitlines())
    # The layout changed too: every page is stale, and still none may be written.
    base = site_small / "layouts/base.html"
    base.write_text(base.read_text().replace("</body>", "<!-- changed --></body>"))
    result = run_site_process(site_small, "build", "--frozen", "--workers", workers)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"components/caption/prompt.j2:{line}" in output and "ZeroDivisionError" in output
    assert "prompts failed to render for 4 material(s)" in output  # from every share
    assert "Traceback" not in output
    assert (tree_digest(site_small / "build"), tree_digest(site_small / "content")) == before
    assert (site_small / "build").exists() is not first_build
    assert sorted(p.name for p in site_small.iterdir() if p.name.startswith(".build")) == []


def test_pages_that_wait_for_llm_outputs_are_rendered_once_they_are_produced(site_small: Path) -> None:
    # No build yet and two captions missing: the workers key every material and render the
    # pages with all their outputs; the other two wait for the model chain, then render.
    import yaml

    missing = sorted((site_small / "content/components/caption").glob("*.yaml"))[:2]
    for output in missing:
        output.unlink()
    result = run_site_process(site_small, "build", "--workers", "2", env=OFFLINE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "19 rendered" in result.stdout and "2 LLM outputs stored" in result.stdout, result.stdout
    for output in missing:
        caption = yaml.safe_load(output.read_text())["output"]["before"]
        page = next((site_small / "build").glob(f"*/{output.stem}/index.html")).read_text()
        assert html.escape(caption, quote=False).split()[0] in page
    again = run_site_process(site_small, "build", "--frozen", "--workers", "2")
    assert "nothing to do" in again.stdout, again.stdout


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc: psutil is not a dependency)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
def test_a_worker_killed_while_rendering_a_first_build_has_its_share_redone(tmp_path: Path) -> None:
    # The parent redoes a dead worker's share, pages included: over the files that worker had
    # already written into the staging folder.
    root = copy_site(tmp_path / "site")  # the whole example: 109 materials
    layout = root / "layouts/material.html"
    slow = "{%- block content %}{% for _ in range(200000) %}{% endfor %}"  # each page takes a while
    layout.write_text(layout.read_text().replace("{%- block content %}", slow, 1))
    build = subprocess.Popen([sys.executable, "-m", "generator", "build", "--frozen", "--workers", "2",
                              "--root", str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        staging = root / ".build.staging"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(staging.glob("*/*/*/index.html")):
            time.sleep(0.01)
        workers = _children(build.pid)
        assert len(workers) == 2 and any(staging.glob("*/*/*/index.html"))
        os.kill(workers[0], signal.SIGKILL)  # mid-pages: it has written some of its share
        out, err = build.communicate(timeout=120)
    finally:
        if build.poll() is None:
            build.kill()
    assert build.returncode == 0, out + err
    assert "Traceback" not in err
    assert len(list(root.glob("build/*/*/index.html"))) == 109 and not staging.exists()
    assert run_site_process(root, "check").returncode == 0
    assert "nothing to do" in run_site_process(root, "build", "--frozen", "--workers", "2").stdout


_KILLED_PARENT = """
import sys, time
from generator.forkpool import Step, fork_steps

def report(share, _):
    return bytes(4 << 20)  # more than a pipe holds: sending it waits for the parent to read

def waiting(reports):
    return [None, None]

def busy():  # the parent is killed in here, before it reads any report
    print("forked", flush=True)
    time.sleep(60)

fork_steps([0, 1], [Step(report, waiting, busy, barrier=BARRIER), Step(report, waiting)])
"""


def _running(pid: int) -> bool:
    """Whether `pid` is alive (a zombie has finished: nobody is left to reap it at once)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _workers_left_after_killing(parent: subprocess.Popen, workers: list[int]) -> list[int]:
    """SIGKILL `parent` alone; its workers still running 30 s later."""
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_running(pid) for pid in workers):
        time.sleep(0.01)
    return [pid for pid in workers if _running(pid)]


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
@pytest.mark.parametrize("barrier", [True, False])
def test_workers_whose_parent_is_killed_exit(barrier: bool) -> None:
    # Each worker used to hold a copy of the parent's end of its pipe, so with the parent
    # killed (OOM killer, a CI timeout) nothing told it: it waited forever to send its report
    # or to be answered, holding the site's build lock.
    script = _KILLED_PARENT.replace("BARRIER", str(barrier))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
    workers: list[int] = []
    try:
        assert parent.stdout.readline() == "forked\n"
        workers = _children(parent.pid)
        assert len(workers) == 2
        assert _workers_left_after_killing(parent, workers) == [], "workers still running after their parent died"
    finally:
        _kill([parent.pid, *workers])
        parent.wait(timeout=30)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
@pytest.mark.parametrize("first", [True, False], ids=["first build", "rebuild"])
def test_workers_of_a_killed_build_exit_and_free_the_site_for_the_next_build(tmp_path: Path, first: bool) -> None:
    # A build whose parent is killed mid-pages (OOM killer, a CI timeout): its workers exit by
    # themselves, and the next build runs at once (no lock held), over what was left.
    root = copy_site(tmp_path / "site")
    if not first:
        assert run_site_process(root, "build", "--frozen").returncode == 0
    layout = root / "layouts/material.html"
    slow = "{%- block content %}<!-- slow -->{% for _ in range(200000) %}{% endfor %}"  # each page takes a while
    layout.write_text(layout.read_text().replace("{%- block content %}", slow, 1))
    pages = ".build.staging/*/*/*/index.html" if first else "build/*/*/index.html"
    before = {p: p.stat().st_mtime_ns for p in root.glob("build/*/*/index.html")}
    build = subprocess.Popen([sys.executable, "-m", "generator", "build", "--frozen", "--workers", "2",
                              "--root", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                len(workers := _children(build.pid)) == 2
                and any(p.stat().st_mtime_ns != before.get(p) for p in root.glob(pages))):
            time.sleep(0.01)
        assert len(workers) == 2
        # the parent only: its workers are rendering
        assert _workers_left_after_killing(build, workers) == [], "the killed build's workers are still running"
    finally:
        _kill(workers)
        if build.poll() is None:
            build.kill()
    after = run_site_process(root, "build", "--frozen", "--workers", "2", timeout=60)
    assert after.returncode == 0 and "another build" not in after.stdout + after.stderr, after.stderr
    assert len(list(root.glob("build/*/*/index.html"))) == 109
    assert not (root / ".build.staging").exists()
