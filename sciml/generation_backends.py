"""Where the chains of a generation run: this process, a local process pool, or a dask cluster.

Each backend runs a module-level function over a list of plain-data tasks (one chain of
samples each) and returns the results in order; :func:`make_backend` picks one from
``--workers`` / ``--scheduler``. A backend never schedules anything itself: the pool is
:class:`concurrent.futures.ProcessPoolExecutor` (spawn) and the cluster is
dask.distributed, an optional extra (``pip install 'sciml[distributed]'``).

Examples
--------
>>> from sciml.generation_backends import make_backend
>>> with make_backend(workers=1) as backend:
...     backend.run(abs, [-1, 2, -3])
[1, 2, 3]
"""

from __future__ import annotations

import os
import time

from sciml.errors import SciMLError

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a dask scheduler before giving up with a one-line error."""
POLL_SECONDS = 0.2
"""How often a waiting backend checks for finished tasks and a dead parent."""


class InProcess:
    """Runs tasks one after another in this process."""

    name = "in-process"
    slots = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, function, tasks, poll=None):
        return [function(task) for task in tasks]


class _Futures:
    """Shared wait loop of the pool and dask backends: poll until all done or one failed."""

    def _wait(self, futures, poll, on_failure):
        while True:
            failed = [f for f in futures if self._failed(f)]
            if failed or all(f.done() for f in futures):
                break
            if poll is not None:
                poll()
            time.sleep(POLL_SECONDS)
        if failed:
            on_failure()
            for f in futures:  # the others stop at their next sample
                while not f.done():
                    time.sleep(POLL_SECONDS)
            self._result(failed[0])
        results = [self._result(f) for f in futures]
        if poll is not None:
            poll()
        return results


def _exit_with_parent(parent: int) -> None:
    """Pool worker initializer: end this worker soon after the generating process dies (SIGKILL
    included), so no orphan keeps solving; its sample in flight is lost, never half-written."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="sciml-parent-watch").start()


class ProcessPool(_Futures):
    """Runs tasks on ``workers`` spawned processes (:class:`concurrent.futures.ProcessPoolExecutor`).

    Spawned, not forked, so workers start clean whatever threads this process runs; each
    worker exits soon after this process dies.
    """

    name = "process pool"

    def __init__(self, workers: int):
        self.slots = int(workers)
        self.name = f"process pool of {self.slots}"
        self.executor = None

    def __enter__(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.executor = ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_exit_with_parent, initargs=(os.getpid(),))
        return self

    def __exit__(self, *exc):
        self.executor.shutdown(wait=True, cancel_futures=True)
        return False

    @staticmethod
    def _failed(future):
        return future.done() and future.exception() is not None

    @staticmethod
    def _result(future):
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result()
        except BrokenProcessPool:
            raise SciMLError("a generation worker process died (killed or out of memory); rerun with --resume: "
                             "the staged samples are kept") from None

    def run(self, function, tasks, poll=None, on_failure=lambda: None):
        return self._wait([self.executor.submit(function, task) for task in tasks], poll, on_failure)


def connect_scheduler(address: str, timeout: float = CONNECT_TIMEOUT):
    """A :class:`distributed.Client` of the scheduler at ``address``, or a one-line :class:`SciMLError`.

    Fails within ``timeout`` seconds when the scheduler cannot be reached, and at once
    when dask.distributed is not installed or the address is malformed.

    Examples
    --------
    >>> client = connect_scheduler("tcp://127.0.0.1:8786")      # doctest: +SKIP
    """
    try:
        from distributed import Client
        from distributed.comm.addressing import parse_address, parse_host_port
    except ImportError:
        raise SciMLError("--scheduler needs dask.distributed, which is not installed: "
                         "pip install 'dask[distributed]', or drop --scheduler to run locally") from None
    try:
        scheme, location = parse_address(str(address))
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except ValueError as exc:
        raise SciMLError(f"--scheduler {address!r} is not a dask address ({exc}); "
                         "give one like tcp://HOST:8786") from None
    try:
        return Client(str(address), timeout=float(timeout), set_as_default=False)
    except (OSError, TimeoutError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SciMLError(f"cannot reach the dask scheduler at {address} ({reason}); start it "
                         "(`dask scheduler`) or check --scheduler") from None


class DaskCluster(_Futures):
    """Runs tasks on a dask.distributed cluster (one task per chain; workers share the filesystem)."""

    def __init__(self, address: str, timeout: float = CONNECT_TIMEOUT):
        self.address = address
        self.timeout = timeout
        self.client = None
        self.name = f"dask scheduler {address}"
        self.slots = 1

    def __enter__(self):
        self.client = connect_scheduler(self.address, self.timeout)
        self.slots = max(1, sum(self.client.nthreads().values()))
        self.name = f"dask scheduler {self.address} ({self.slots} worker threads)"
        return self

    def __exit__(self, *exc):
        self.client.close()
        return False

    @staticmethod
    def _failed(future):
        return future.status == "error"

    @staticmethod
    def _result(future):
        from distributed import KilledWorker

        try:
            return future.result()
        except KilledWorker as exc:
            raise SciMLError(f"dask workers kept dying on a generation task ({exc.task}); rerun with --resume: "
                             "the staged samples are kept") from None

    def run(self, function, tasks, poll=None, on_failure=lambda: None):
        futures = [self.client.submit(function, task, pure=False) for task in tasks]
        return self._wait(futures, poll, on_failure)


def make_backend(workers: int | None = None, scheduler: str | None = None):
    """The backend for ``workers`` local processes or a dask ``scheduler`` address (checks both)."""
    if scheduler is not None and workers is not None:
        raise SciMLError("--scheduler and --workers exclude each other: the cluster's workers do the work "
                         "(size the cluster when starting it); drop --workers")
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise SciMLError(f"--workers must be a positive integer, got {workers!r}")
    if scheduler is not None:
        return DaskCluster(scheduler)
    return InProcess() if workers in (None, 1) else ProcessPool(int(workers))
