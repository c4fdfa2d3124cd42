"""Spreading a build's per-material work over every core, in steps.

A cold build parses 50,000 files, computes 70,000 keys and renders 10,000 pages at 10,000
materials, in pure Python: one core would do all the work while the others idle. `fork_steps`
forks a worker per share, which inherits everything loaded so far (nothing is pickled but
what each step reports). In each step every worker works on its share and reports; the parent
merges the reports (it may raise: say, every problem of every share at once, and then the
workers are stopped) and gives each share what it needs for the next step. A step without a
barrier lets the workers go on at once, while its merge runs.

A share's data stays in the worker that loaded it: no process ever holds all of it (the
parent, which waits while the workers work, holds none). A worker that dies without
reporting costs only time: the parent does its steps itself (and raises its error, if it was
a bug). Workers whose parent is killed exit by themselves, at their next report at the latest.

Forking is only safe in a process with no other threads (a lock held by another thread at
fork time stays held in the child forever), so `site watch`, which serves while it builds,
works in one process.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any, Callable, NamedTuple, Sequence

MIN_ITEMS_PER_WORKER = 64  # below this, forking costs more than it saves


def worker_count(requested: int | None, items: int) -> int:
    """How many processes (the parent included) should share `items` pieces of work."""
    if not hasattr(os, "fork"):
        return 1
    if requested is not None:  # asked for: no minimum share
        return max(1, min(requested, items))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, items // MIN_ITEMS_PER_WORKER))


class Step(NamedTuple):
    """One step of fork_steps: see there."""

    work: Callable[[Any, Any], Any]  # (share, what the last merge gave it) -> report
    merge: Callable[[list], list]  # every share's report -> what each share is given next
    meanwhile: Callable[[], Any] | None = None  # this process's own work during the step
    barrier: bool = True  # False: workers go straight on to the next step (given None)


def fork_steps(shares: Sequence[Any], steps: Sequence[Step]) -> list:
    """Work on `shares` in steps, each share in a worker process of its own.

    In each Step, every share's `work(share, given)` runs in its process (`given` is None in
    the first step) while `meanwhile()` (if not None) runs here; then `merge(reports)` runs
    here, with every share's report in order, and returns what each share is given in the next
    step (after the last step: the result). A step without a barrier lets the workers go on to
    the next step (given None) while its merge runs: the merge can still stop them by raising.
    A share's worker keeps what its steps leave behind for its next steps. If anything here
    raises, the workers are stopped. With one share, everything runs in this process.

    Call it before this process starts any thread: a fork copies only the calling thread.
    """
    given: list = [None] * len(shares)
    if len(shares) == 1:
        for work, merge, meanwhile, barrier in steps:
            if meanwhile is not None:
                meanwhile()
            given = merge([work(shares[0], given[0])])
            if not barrier:
                given = [None]
        return given
    import multiprocessing

    context = multiprocessing.get_context("fork")
    children = []  # [share index, process, connection]; connection None once the worker is gone
    for index in range(len(shares)):
        ours, theirs = context.Pipe(duplex=True)
        parents_ends = [child[2] for child in children] + [ours]  # the worker closes its copies
        process = context.Process(target=_work, args=(shares[index], steps, theirs, parents_ends), daemon=True)
        process.start()
        theirs.close()
        children.append([index, process, ours])
    history: list[list] = []  # what each step gave each share: a dead worker's steps are redone here
    adopted: set[int] = set()  # shares whose worker died: this process now holds their state

    def redo(index: int, upto: int) -> Any:
        first = upto if index in adopted else 0
        adopted.add(index)
        report = None
        for step, step_given in zip(steps[first:upto + 1], history[first:]):
            report = step.work(shares[index], step_given[index])
        return report

    finished = False
    try:
        for number, (work, merge, meanwhile, barrier) in enumerate(steps):
            history.append(given)
            if meanwhile is not None:
                meanwhile()
            arrived = _gather(children)
            reports = [_report(child, arrived.get(child[0]), lambda index=child[0], upto=number: redo(index, upto))
                       for child in children]
            given = merge(reports)
            if not barrier:
                given = [None] * len(shares)
            elif number + 1 < len(steps):
                for child in children:
                    if child[2] is not None:
                        child[2].send(given[child[0]])
        finished = True
        return given
    finally:
        for _, process, connection in children:
            if connection is not None:
                connection.close()
                if not finished:  # stopped early (something here raised): the worker waits
                    process.terminate()
            process.join()


def _gather(children: list[list]) -> dict[int, Any]:
    """Every live worker's next message. A worker blocks in send() until its whole report is
    read, so each is read as soon as it comes, as bytes, and only then unpickled: no worker
    waits for another's report to be read or unpickled first. None: the worker died, or
    failed and said so by sending None."""
    from multiprocessing.connection import wait

    raw: dict[int, bytes | None] = {}
    pending = {child[2]: child[0] for child in children if child[2] is not None}
    while pending:
        for connection in wait(list(pending)):
            index = pending.pop(connection)
            try:
                raw[index] = connection.recv_bytes()
            except EOFError:
                raw[index] = None
    arrived: dict[int, Any] = {}
    for index in sorted(raw):
        message = raw.pop(index)  # each report's bytes are let go once it is unpickled
        arrived[index] = pickle.loads(message) if message is not None else None
    return arrived


def _report(child: list, message: Any, redo: Callable[[], Any]) -> Any:
    """The worker's report, or `redo()` here when the worker died or failed."""
    if message is not None:
        return message[0]
    if child[2] is not None:
        child[2].close()
        child[2] = None
    return redo()


def _work(share: Any, steps: Sequence[Step], connection: Any, parents_ends: list) -> None:
    import queue
    import threading

    # A fork copies the parent's ends of every pipe made so far. Closed here, they no longer
    # keep a pipe open after the parent is gone: a worker whose parent was killed sees it (EOF,
    # EPIPE) and exits, instead of waiting forever with the site's build lock.
    for end in parents_ends:
        end.close()

    # Reports go out in order through one thread: send() blocks until the parent, busy with
    # its own work of the step, reads, and a worker past a step without a barrier goes on.
    outbox: queue.SimpleQueue = queue.SimpleQueue()

    def send_all() -> None:
        while (message := outbox.get()) is not None:
            try:
                connection.send_bytes(message)
            except OSError:  # the parent is gone: nothing this worker does can matter now
                os._exit(1)

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    try:
        given = None
        for number, step in enumerate(steps):
            outbox.put(pickle.dumps((step.work(share, given),), pickle.HIGHEST_PROTOCOL))
            if step.barrier and number + 1 < len(steps):
                given = connection.recv()  # the parent answers once it has every report
            else:
                given = None
    except EOFError:  # the parent stopped early
        pass
    except BaseException:  # the parent does this share itself and raises the error itself
        outbox.put(pickle.dumps(None))
        outbox.put(None)
        sender.join()
        sys.exit(1)  # quietly: no traceback from a worker
    outbox.put(None)
    sender.join()
    connection.close()
