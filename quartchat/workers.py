"""Several worker processes (``server.workers`` > 1), each shutting down like a single one.

Like ``hypercorn.run``, this parent process binds the listening sockets and hands them to the
worker processes it spawns; but one socket per worker, bound with SO_REUSEPORT, so the kernel
spreads new connections evenly over the workers (with one shared socket, whichever worker
wakes first accepts a whole burst, and long-lived websockets pile up on it).  Each worker
runs :func:`~.serving.serve_app`, the same code as a single process: on SIGTERM or SIGINT, or
when the parent tells it to stop, it closes every websocket with 1001 before it stops
accepting.  The parent tells its workers by closing its end of a pipe to each, so workers
also stop, cleanly, if the parent is killed outright.

When one worker ends, for any reason, the parent stops the others and exits: a supervisor
(systemd, a container runtime) restarts the whole server.  With prometheus-client's
multiprocess mode, ``/metrics`` adds up the counters of every worker (see :mod:`.metrics`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

from hypercorn.config import Sockets

from .config import Settings
from .logs import configure_logging
from .metrics import MULTIPROCESS_ENV
from .serving import GOODBYE_SECONDS, STOP_SIGNALS, hypercorn_config, run_loop, serve_app

log = logging.getLogger(__name__)

EXIT_GRACE_SECONDS = 5.0  # past the workers' own shutdown time, before they are killed


def serve_workers(settings: Settings) -> int:
    """Serve with ``settings.server.workers`` processes until SIGINT or SIGTERM, or until a
    worker ends; return the exit code (0 when every worker exited cleanly)."""
    configure_logging(settings.server.log_format)
    config = hypercorn_config(settings)
    config.workers = settings.server.workers  # Hypercorn then binds with SO_REUSEPORT
    socket_sets = [config.create_sockets() for _ in range(config.workers)]
    wakeup = _Wakeup()
    with tempfile.TemporaryDirectory(prefix="quartchat-metrics-") as metrics_dir:
        os.environ[MULTIPROCESS_ENV] = metrics_dir  # read by prometheus-client in each worker
        try:
            with _stop_signals_held(wakeup.on_signal):
                workers = [_spawn(settings, sockets) for sockets in socket_sets]
            log.info("started %d workers: %s", len(workers), [w.process.pid for w in workers])
            for sockets in socket_sets:  # the workers hold copies: once they close theirs,
                for sock in (
                    *sockets.secure_sockets,
                    *sockets.insecure_sockets,
                    *sockets.quic_sockets,
                ):
                    sock.close()  # the port closes
            stop_seconds = GOODBYE_SECONDS + config.graceful_timeout + EXIT_GRACE_SECONDS
            return _supervise(workers, wakeup, stop_seconds)
        finally:
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            wakeup.close()


class _Wakeup:
    """A self-pipe: the signal handler writes to it, :func:`_supervise` waits on it."""

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()

    def on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        os.write(self._write_fd, b"\0")

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self._write_fd)


@contextmanager
def _stop_signals_held(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """While workers are spawned, ignore SIGINT and SIGTERM: the workers inherit that, so a
    Ctrl+C cannot interrupt one half-started (it listens once it serves, and it hears the
    parent's pipe in any case).  Meanwhile the parent blocks them, and Linux keeps a blocked
    signal pending even while ignored: ``handler`` gets it once installed, on exit."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class _Worker:
    def __init__(self, process: BaseProcess, stop: Connection) -> None:
        self.process = process
        self.stop = stop  # closing it tells the worker to stop


def _spawn(settings: Settings, sockets: Sockets) -> _Worker:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked loop
    from_parent, to_worker = context.Pipe(duplex=False)
    process = context.Process(
        target=_work, args=(settings, sockets, from_parent), name="quartchat-worker"
    )
    process.start()
    from_parent.close()
    return _Worker(process, to_worker)


def _work(settings: Settings, sockets: Sockets, parent: Connection) -> None:
    """A worker process: serve the app on the parent's sockets until told to stop."""
    configure_logging(settings.server.log_format)
    config = hypercorn_config(settings)
    listening = sockets.secure_sockets if config.ssl_enabled else sockets.insecure_sockets
    # Hypercorn's fd:// bind serves an inherited socket (detached: Hypercorn's now).
    config.bind = [f"fd://{sock.detach()}" for sock in listening]
    config.quic_bind = [f"fd://{sock.detach()}" for sock in sockets.quic_sockets]
    run_loop(serve_app(config, parent), settings.server.event_loop)


def _supervise(workers: list[_Worker], wakeup: _Wakeup, stop_seconds: float) -> int:
    """Wait for a stop signal or a worker's end; then stop every worker, within
    ``stop_seconds`` (the rest are killed)."""
    sentinels = {worker.process.sentinel: worker.process for worker in workers}
    ready = wait([wakeup.read_fd, *sentinels])
    ended = [sentinels[fd] for fd in ready if fd in sentinels]
    if ended:
        log.warning("worker %d ended (exit code %s): stopping", ended[0].pid, ended[0].exitcode)
    else:
        log.info("stopping %d workers", len(workers))
    for worker in workers:
        worker.stop.close()
    deadline = time.monotonic() + stop_seconds
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
    return _exit_code(workers)


def _exit_code(workers: list[_Worker]) -> int:
    code = 0
    for worker in workers:
        process = worker.process
        if process.exitcode is None:
            log.error("worker %d did not stop in time: killed", process.pid)
            process.kill()
            process.join()
        if process.exitcode != 0:
            log.error("worker %d exited with %s", process.pid, process.exitcode)
            code = 1
    return code
