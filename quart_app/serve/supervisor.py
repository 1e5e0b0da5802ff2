"""The production entry point: hypercorn's workers under a supervisor that replaces dead ones.

    python -m quart_app.serve -c hypercorn.toml [--bind 127.0.0.1:8080] [--workers 2]
                              [--certfile cert.pem --keyfile key.pem]

Each worker runs hypercorn's own ``worker_serve`` on an asyncio or uvloop loop (as
``worker_class`` says), so a request is served as under ``hypercorn -c
hypercorn.toml``; what differs is process management, that each worker gets its own
listening sockets (``SO_REUSEPORT``), so the kernel balances connections, and that a
stop signal first ends the app's live streams (``serve_worker``).

Upstream bugs worked around here (hypercorn 0.18.0; each test runs the installed, bare
hypercorn and fails once the bug is gone, so the workaround can be removed). The first
two are hypercorn's behaviour, not its code, so they stay here rather than in
``quart_app.upstream``; the registry in docs/architecture.md lists them with the rest:

1. A worker's death stops the whole instance with exit status 0, so a
   ``Restart=on-failure`` unit never restarts it. In ``hypercorn/run.py``, ``run()``
   sets the shutdown event once any worker exits non-zero (lines 98-101) and
   terminates the rest (103-104); line 106 then replaces the dead worker's status with
   the survivors' (pgjones/hypercorn#269; fix proposed in pgjones/hypercorn#372).
   Here: ``Supervisor`` logs and replaces the dead worker. Test (tests/test_serve.py):
   ``test_installed_hypercorn_still_stops_the_instance_when_a_worker_dies``.
2. SIGTERM cuts requests that are still draining. ``run()`` answers SIGTERM by setting
   the shutdown event (lines 64-67), but ``terminate()``s every other worker as soon as
   the first one has exited (96-104); a worker given that event installs no SIGTERM
   handler (``worker_serve`` in ``hypercorn/asyncio/run.py``, lines 65-79), so it dies
   mid-request. No upstream issue found. Here: each worker handles SIGTERM itself
   (its own shutdown trigger), so SIGTERM drains it; ``Supervisor.stop`` sends it to
   each and waits up to ``graceful_timeout``. Test (tests/test_serve.py):
   ``test_installed_hypercorn_still_cuts_draining_requests_on_sigterm``.
3. HTTP/2 drops a connection when the app answers before reading the request body
   (pgjones/hypercorn#329). Here: ``serve_worker`` applies ``quart_app.upstream.hypercorn``
   (with h11's fixes for obs-fold and ``chunked`` not last).
   Test (tests/test_http2.py):
   ``test_installed_hypercorn_still_drops_the_connection_without_the_fix``.

What the supervisor does:

- a worker that dies (the OOM killer's SIGKILL, a crash, ``kill <pid>``) is logged with
  its pid and signal or exit status, and replaced; only its own requests are lost;
- SIGTERM or SIGINT to the supervisor drains every worker (hypercorn's graceful
  shutdown, up to ``graceful_timeout``) and exits 0;
- a worker that loses its supervisor (killed with SIGKILL) drains and exits too;
- workers that keep dying (``CRASH_LIMIT`` deaths within ``CRASH_WINDOW`` seconds, as
  when the app cannot start) stop the instance with exit status 1, so the service
  manager sees a failure and applies its own restart back-off.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import signal
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.typing import AppWrapper
from hypercorn.utils import load_application

from quart_app.serve.access_log import AccessLogger
from quart_app.upstream import hypercorn as upstream_hypercorn

log = logging.getLogger("quart_app.serve")
# hypercorn's worker classes that serve_worker runs.
WORKER_CLASSES = ("asyncio", "uvloop")

DEFAULT_APP = "quart_app.asgi:app"
# This many deaths within the window means the workers cannot run at all.
CRASH_LIMIT = 5
CRASH_WINDOW = 30.0
# After graceful_timeout, workers still running are killed; this is the margin for
# their own shutdown (closing pools, flushing logs).
KILL_MARGIN = 5.0


def serve_worker(config: Config, sockets: Sockets) -> None:
    """One worker process: hypercorn's worker, stopping when its supervisor is gone.

    As hypercorn's own asyncio and uvloop workers run, but with a shutdown trigger of
    our own: on SIGTERM or SIGINT it first tells the app (``begin_draining``), whose
    live streams never finish by themselves, then lets hypercorn drain as usual.
    """
    _drain_when_orphaned()
    # Before any connection is accepted: the HTTP/2 and h11 fixes (quart_app.upstream.hypercorn).
    upstream_hypercorn.apply()
    app = load_application(config.application_path, config.wsgi_max_body_size)
    loop_factory = None
    if config.worker_class == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.get_loop().set_exception_handler(_ignore_tls_handshake_failures)
        runner.run(_serve(app, config, sockets))


async def _serve(app: AppWrapper, config: Config, sockets: Sockets) -> None:
    # The handlers go in before the app starts, as hypercorn's own do: a signal to this
    # worker alone drains it, like the supervisor's SIGTERM does.
    received = asyncio.Event()
    loop = asyncio.get_running_loop()
    for name in ("SIGTERM", "SIGINT"):
        loop.add_signal_handler(getattr(signal, name), received.set)

    async def stop_signal() -> None:
        await received.wait()
        # Imported by the worker only: the supervisor imports none of the app.
        from quart_app.http.draining import begin_draining

        begin_draining()

    await worker_serve(app, config, sockets=sockets, shutdown_trigger=stop_signal)


def _ignore_tls_handshake_failures(
    loop: asyncio.AbstractEventLoop, context: dict[str, Any]
) -> None:
    # As hypercorn's workers do: a client's failed TLS handshake is no error of ours.
    if not isinstance(context.get("exception"), ssl.SSLError):
        loop.default_exception_handler(context)


def _drain_when_orphaned() -> None:
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        # The sentinel becomes ready when the supervisor exits, however it exits.
        wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def describe_exit(exitcode: int | None) -> str:
    """``killed by SIGKILL`` or ``exited with status 3``, from a process's exit code."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


class Supervisor:
    """Keeps ``config.workers`` hypercorn workers running until told to stop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.context = multiprocessing.get_context("spawn")  # as hypercorn starts workers
        self.workers: list[BaseProcess] = []
        self.deaths: deque[float] = deque()
        self.stopping = False
        self.exit_code = 0
        self.kill_deadline = float("inf")

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (exit 0) or a crash loop (exit 1)."""
        for name in ("SIGTERM", "SIGINT"):
            signal.signal(getattr(signal, name), self._on_stop_signal)
        self._start_workers()
        while self.workers:
            self._reap(wait([worker.sentinel for worker in self.workers], timeout=0.5))
            if self.stopping:
                self._kill_stragglers()
            else:
                self._start_workers()
        log.info("All workers have stopped; exiting with status %d", self.exit_code)
        return self.exit_code

    def _start_workers(self) -> None:
        while len(self.workers) < self.config.workers:
            # Each worker listens on sockets of its own, bound with SO_REUSEPORT
            # (hypercorn sets it when workers > 1), so the kernel spreads connections
            # evenly. On one shared socket, whichever worker woke first accepted every
            # pending connection at once while the other sat idle (bench scenario G).
            sockets = self.config.create_sockets()
            worker = self.context.Process(
                target=serve_worker, args=(self.config, sockets), name="hypercorn-worker"
            )
            worker.start()
            self.workers.append(worker)
            # start() has handed the worker duplicates. Once ours are closed, a
            # worker's sockets close with it, so the kernel stops sending it
            # connections the moment it stops accepting or dies.
            for sock in (*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets):
                sock.close()
            log.info("Worker %d started", worker.pid)

    def _reap(self, ready: Sequence[object]) -> None:
        for worker in [worker for worker in self.workers if worker.sentinel in ready]:
            worker.join()
            self.workers.remove(worker)
            if self.stopping:
                log.info("Worker %d %s", worker.pid, describe_exit(worker.exitcode))
                continue
            if worker.exitcode == 0:
                # Someone sent this worker alone a SIGTERM: it drained, nothing was lost.
                log.warning("Worker %d stopped; starting a replacement", worker.pid)
            else:
                log.error(
                    "Worker %d %s; its in-flight requests are lost. Starting a replacement.",
                    worker.pid,
                    describe_exit(worker.exitcode),
                )
            self._count_death()

    def _count_death(self) -> None:
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - CRASH_WINDOW:
            self.deaths.popleft()
        if len(self.deaths) >= CRASH_LIMIT:
            log.critical(
                "%d workers died within %.0f s; stopping with status 1",
                len(self.deaths),
                CRASH_WINDOW,
            )
            self.exit_code = 1
            self.stop()

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s received; draining workers", signal.Signals(signum).name)
        self.stop()

    def stop(self) -> None:
        """Ask every worker to drain (SIGTERM), and stop replacing them."""
        if self.stopping:
            return
        self.stopping = True
        self.kill_deadline = time.monotonic() + self.config.graceful_timeout + KILL_MARGIN
        # Each worker closes its listening sockets as it stops accepting, so new
        # connections are refused at once.
        for worker in self.workers:
            if worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)

    def _kill_stragglers(self) -> None:
        if time.monotonic() < self.kill_deadline:
            return
        for worker in self.workers:
            if worker.pid is not None and worker.exitcode is None:
                log.warning("Worker %d did not drain in time; killing it", worker.pid)
                os.kill(worker.pid, signal.SIGKILL)


def load_config(arguments: argparse.Namespace) -> Config:
    """hypercorn's configuration from the TOML file, then the command-line overrides."""
    config = Config.from_toml(arguments.config) if arguments.config else Config()
    config.application_path = arguments.app
    if arguments.bind:
        config.bind = arguments.bind
    if arguments.workers is not None:
        config.workers = arguments.workers
    if arguments.access_logfile is not None:
        config.accesslog = arguments.access_logfile
    if arguments.worker_class is not None:
        config.worker_class = arguments.worker_class
    if arguments.backlog is not None:
        config.backlog = arguments.backlog
    if arguments.certfile is not None:
        config.certfile = arguments.certfile
    if arguments.keyfile is not None:
        config.keyfile = arguments.keyfile
    if config.statsd_host is None:  # hypercorn puts its statsd logger only over its own
        config.logger_class = AccessLogger
    if config.worker_class not in WORKER_CLASSES:
        raise SystemExit(f"worker_class must be one of {sorted(WORKER_CLASSES)}")
    if config.workers < 1:
        raise SystemExit("workers must be at least 1")
    return config


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: the app, the TOML file and the options that override it."""
    parser = argparse.ArgumentParser(prog="python -m quart_app.serve", description=__doc__)
    parser.add_argument("app", nargs="?", default=DEFAULT_APP, help="ASGI app, module:name")
    parser.add_argument("-c", "--config", help="hypercorn TOML file, e.g. hypercorn.toml")
    parser.add_argument("-b", "--bind", action="append", help="HOST:PORT, overrides the file")
    parser.add_argument("-w", "--workers", type=int, help="worker processes")
    parser.add_argument("--access-logfile", help="access log path, '-' for stdout")
    parser.add_argument("-k", "--worker-class", choices=sorted(WORKER_CLASSES), help="event loop")
    parser.add_argument("--backlog", type=int, help="listen queue length")
    parser.add_argument("--certfile", help="PEM certificate chain: serve TLS (with --keyfile)")
    parser.add_argument("--keyfile", help="PEM private key of the certificate")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and supervise the workers; the process's exit status."""
    config = load_config(parse_arguments(argv))
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
    )
    return Supervisor(config).run()
