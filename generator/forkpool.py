"""Spreading a build's per-material work over every core.

A cold build computes keys for and renders thousands of pages, in pure Python: one core would
do all the work while the others idle. `fork_map` forks workers that inherit the loaded site
and the compiled templates (nothing is pickled but each item's small result); each does its
share, and the parent does a share too. A worker that dies without reporting costs only time:
the parent does its share itself (and raises its error, if it was a bug).

Forking is only safe in a process with no other threads (a lock held by another thread at
fork time stays held in the child forever), so `site watch`, which serves while it builds,
works in-process.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

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


def fork_map(items: Sequence[Item], fn: Callable[[Item], Result], workers: int,
             finish: Callable[[], Any] = lambda: None) -> tuple[list[Result], list[Any]]:
    """`[fn(i) for i in items]`, spread over `workers` processes, results in order; and what
    `finish()` returned in each process once its share was done (e.g. the files it wrote).

    Call it before this process starts any thread: a fork copies only the calling thread.
    """
    if workers <= 1 or len(items) < 2:
        results = [fn(n) for n in items]
        return results, [finish()]
    import multiprocessing

    context = multiprocessing.get_context("fork")
    shares = [list(range(i, len(items), workers)) for i in range(workers)]
    children = []
    for share in shares[1:]:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_work, args=(items, share, fn, finish, send), daemon=True)
        process.start()
        send.close()
        children.append((share, process, receive))

    results: list = [None] * len(items)
    try:
        for i in shares[0]:
            results[i] = fn(items[i])
        finished = [finish()]
    except BaseException:
        for _, process, receive in children:
            process.terminate()
            process.join()
            receive.close()
        raise
    for share, process, receive in children:
        try:
            got = receive.recv()
        except EOFError:  # the worker died before reporting
            got = None
        process.join()
        receive.close()
        if got is None:
            got = ([fn(items[i]) for i in share], finish())
        for i, result in zip(share, got[0]):
            results[i] = result
        finished.append(got[1])
    return results, finished


def _work(items: Sequence, share: list[int], fn: Callable, finish: Callable, send) -> None:
    try:
        results = [fn(items[i]) for i in share]
        done = finish()
    except BaseException:  # the parent does this share again and raises the error itself
        send.send(None)
        sys.exit(1)  # quietly: no traceback from a worker
    send.send((results, done))
    send.close()
