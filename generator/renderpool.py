"""Rendering many output nodes on every core.

A cold build renders thousands of pages, and Jinja is pure Python: one core would do all the
work while the others idle. When enough nodes are stale, `render_nodes` forks workers that
inherit the loaded site and the compiled templates (nothing is pickled but each node's small
result) and each renders and writes its share; the parent renders a share too. A worker that
dies without reporting costs only time: the parent renders its share itself.

Forking is only safe in a process with no other threads (a lock held by another thread at
fork time stays held in the child forever), so `site watch`, which serves while it builds,
renders in-process.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence, TypeVar

Node = TypeVar("Node")
Result = TypeVar("Result")

MIN_NODES_PER_WORKER = 64  # below this, forking costs more than it saves


def worker_count(requested: int | None, stale: int) -> int:
    """How many processes (the parent included) should render `stale` nodes."""
    if not hasattr(os, "fork"):
        return 1
    if requested is not None:  # asked for: no minimum share
        return max(1, min(requested, stale))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, stale // MIN_NODES_PER_WORKER))


def render_nodes(nodes: Sequence[Node], render_one: Callable[[Node], Result], workers: int,
                 finish: Callable[[], Any]) -> tuple[list[Result], list[Any]]:
    """`[render_one(n) for n in nodes]`, spread over `workers` processes, results in order; and
    what `finish()` returned in each process once its share was done (e.g. the files it wrote).

    Call it before this process starts any thread: a fork copies only the calling thread.
    """
    if workers <= 1 or len(nodes) < 2:
        results = [render_one(n) for n in nodes]
        return results, [finish()]
    import multiprocessing

    context = multiprocessing.get_context("fork")
    shares = [list(range(i, len(nodes), workers)) for i in range(workers)]
    children = []
    for share in shares[1:]:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_work, args=(nodes, share, render_one, finish, send), daemon=True)
        process.start()
        send.close()
        children.append((share, process, receive))

    results: list = [None] * len(nodes)
    for i in shares[0]:
        results[i] = render_one(nodes[i])
    finished = [finish()]
    for share, process, receive in children:
        try:
            got = receive.recv()
        except EOFError:  # the worker died before reporting
            got = None
        process.join()
        receive.close()
        if got is None:
            got = ([render_one(nodes[i]) for i in share], finish())
        for i, result in zip(share, got[0]):
            results[i] = result
        finished.append(got[1])
    return results, finished


def _work(nodes: Sequence, share: list[int], render_one: Callable, finish: Callable, send) -> None:
    try:
        results = [render_one(nodes[i]) for i in share]
        done = finish()
    except BaseException:  # a bug: the parent renders this share again and raises it there
        send.send(None)
        raise
    send.send((results, done))
    send.close()
