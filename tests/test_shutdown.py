"""The SIGTERM rule for hypercorn-supervised workers (end to end in test_asgi.py)."""

from __future__ import annotations

import multiprocessing
import signal

from quart_app.shutdown import ignore_sigterm_in_supervised_worker


def report(queue: multiprocessing.Queue[tuple[bool, bool]]) -> None:
    changed = ignore_sigterm_in_supervised_worker()
    queue.put((changed, signal.getsignal(signal.SIGTERM) is signal.SIG_IGN))


def test_a_spawned_worker_ignores_sigterm() -> None:
    context = multiprocessing.get_context("spawn")  # as hypercorn starts its workers
    queue: multiprocessing.Queue[tuple[bool, bool]] = context.Queue()
    worker = context.Process(target=report, args=(queue,))
    worker.start()
    worker.join(timeout=60)
    assert queue.get(timeout=5) == (True, True)


def test_the_main_process_keeps_its_sigterm_handling() -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert ignore_sigterm_in_supervised_worker() is False
    assert signal.getsignal(signal.SIGTERM) == before
