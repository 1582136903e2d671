"""Where runs execute. ``BACKENDS`` maps the ``--backend`` name to a class.

A backend takes a list of :class:`~sim.planning.runs.RunTask` and yields ``(task, row)`` as runs
finish, in whatever order they finish; callers store rows keyed, so order never matters for
results. Both backends run the same function on the same plain data, so the rows are identical
(but for ``wall_time_s``).

- ``local``: a process pool on this machine (``workers`` processes; 1 runs inline, which is what
  a debugger or a profiler wants). Workers come from a fork server that has imported llmsim once,
  so starting one costs a fork, and no worker inherits the parent's threads (progress bar).
- ``ray``: one Ray task per run, on a local Ray instance started here (``workers`` CPUs) or on the
  cluster at ``address`` (whose nodes must have llmsim installed). Ray is an optional extra.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from sim.errors import LlmsimError
from sim.registry import Registry

# The CLI reads BACKENDS to build its parser: the process pool and the simulator are imported
# where a sweep first needs them, not by every command.
if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from sim.planning.runs import RunTask


class Backend(Protocol):
    def run(self, tasks: Sequence[RunTask]) -> Iterator[tuple[RunTask, dict]]: ...

    def close(self) -> None: ...


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


class LocalBackend:
    """A process pool; ``workers=1`` runs in this process."""

    def __init__(self, workers: int | None = None, address: str | None = None):
        if address:
            raise LlmsimError("--address is for --backend ray; the local backend uses this machine")
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            if ctx.get_start_method() == "forkserver":
                ctx.set_forkserver_preload(["sim.planning.runs", "sim.cluster"])
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    def run(self, tasks: Sequence[RunTask]) -> Iterator[tuple[RunTask, dict]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        from sim.planning.runs import execute

        if self.workers == 1 or len(tasks) <= 1:
            for task in tasks:
                yield task, execute(task)
            return
        pool = self._executor()
        # at most a few tasks queued per worker: rows arrive steadily and a kill loses little
        pending = {}
        todo = iter(tasks)
        for task in todo:
            pending[pool.submit(execute, task)] = task
            if len(pending) >= 2 * self.workers:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                yield task, future.result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending[pool.submit(execute, nxt)] = nxt

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class RayBackend:
    """Ray tasks on a local instance (started and stopped here) or the cluster at ``address``."""

    def __init__(self, workers: int | None = None, address: str | None = None):
        from sim.cluster.partition import start_ray
        from sim.planning.runs import execute
        self._ray, self._owns = start_ray(workers or default_workers(), address)
        self._execute = self._ray.remote(num_cpus=1)(execute)

    def run(self, tasks: Sequence[RunTask]) -> Iterator[tuple[RunTask, dict]]:
        ray = self._ray
        pending = {self._execute.remote(task): task for task in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()


BACKENDS: Registry[type] = Registry("backend", {"local": LocalBackend, "ray": RayBackend})


def make_backend(name: str, workers: int | None = None, address: str | None = None) -> Backend:
    if workers is not None and workers < 1:
        raise LlmsimError(f"--workers: expected an integer >= 1, got {workers}")
    return BACKENDS.lookup(name, field="--backend")(workers=workers, address=address)
