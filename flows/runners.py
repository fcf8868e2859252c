"""Task runners for casework's flows: threads on this machine, or a Dask cluster.

Candidate models of one use case, and use cases of ``casework run --all``, fan out
through the task runner of their flow. Threads are the default. ``dask`` starts a
``LocalCluster`` of worker processes on loopback (no dashboard), or connects to an
existing Dask scheduler when given its address.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from casework.errors import ClusterError

__all__ = [
    "DEFAULT_DASK_WORKERS",
    "RunnerKind",
    "check_dask_scheduler",
    "check_runner_options",
    "make_task_runner",
    "with_task_runner",
]

logger = logging.getLogger(__name__)

RunnerKind = Literal["threads", "dask"]

#: Worker processes of a local Dask cluster when no count is given.
DEFAULT_DASK_WORKERS = 2

_LOOPBACK = "127.0.0.1"
_SCHEDULER_PROTOCOLS = ("tcp", "tls")
_CONNECT_TIMEOUT_SECONDS = 5.0


def make_task_runner(
    runner: RunnerKind = "threads",
    dask_address: str | None = None,
    dask_workers: int | None = None,
    max_workers: int | None = None,
) -> Any:
    """Build the task runner a flow fans out with.

    Args:
        runner: ``threads`` (default) or ``dask``.
        dask_address: with ``dask``, the scheduler of an existing cluster, e.g.
            ``tcp://10.0.0.5:8786``; None starts a local cluster on loopback.
        dask_workers: worker processes of a local cluster (default 2).
        max_workers: with ``threads``, the most tasks run at once (default: Prefect's).

    Raises:
        ClusterError: see :func:`check_runner_options`.
    """
    check_runner_options(runner, dask_address, dask_workers)
    if runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=max_workers)

    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(cluster_kwargs=_local_cluster_kwargs(dask_workers))


def check_runner_options(
    runner: str, dask_address: str | None = None, dask_workers: int | None = None
) -> None:
    """Fail in one line, before Prefect is imported, on options no runner can use.

    Raises:
        ClusterError: an unknown runner, Dask options given to the thread runner, a
            worker count below one, or a Dask scheduler that cannot be reached.
    """
    if runner not in get_args(RunnerKind):
        raise ClusterError(
            f"task runner {runner!r} is unknown; expected one of "
            f"{', '.join(get_args(RunnerKind))}"
        )
    if runner == "threads" and (dask_address or dask_workers):
        raise ClusterError("--dask-address and --dask-workers need --runner dask")
    if dask_workers is not None and dask_workers < 1:
        raise ClusterError(f"--dask-workers must be at least 1, got {dask_workers}")
    if dask_address:
        check_dask_scheduler(dask_address)


def with_task_runner(flow: Any, runner: RunnerKind, **options: Any) -> Any:
    """``flow`` itself for the default thread runner, else a copy using ``runner``."""
    if runner == "threads" and not any(options.values()):
        return flow
    return flow.with_options(task_runner=make_task_runner(runner, **options))


def check_dask_scheduler(address: str) -> None:
    """Fail in one line when a Dask scheduler's address is malformed or silent.

    Raises:
        ClusterError: the address is not ``tcp://host:port`` (or ``tls://``), or
            nothing accepts connections there.
    """
    parts = urlsplit(address)
    if parts.scheme not in _SCHEDULER_PROTOCOLS or not parts.hostname or not parts.port:
        raise ClusterError(
            f"Dask scheduler address {address!r} is not of the form tcp://host:port"
        )
    try:
        with socket.create_connection(
            (parts.hostname, parts.port), timeout=_CONNECT_TIMEOUT_SECONDS
        ):
            pass
    except OSError as exc:
        raise ClusterError(
            f"Dask scheduler at {address} cannot be reached ({exc.strerror or exc}); "
            "start it or leave out --dask-address for a local cluster"
        ) from None


def _local_cluster_kwargs(dask_workers: int | None) -> dict[str, Any]:
    n_workers = dask_workers or DEFAULT_DASK_WORKERS
    # Worker processes on loopback, one thread each (the estimators use their own
    # threads). The scheduler always opens an HTTP port (health, metrics): put it on
    # a free loopback port, with the dashboard off, so nothing listens beyond this
    # machine and two clusters never fight over 8787.
    return {
        "n_workers": n_workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": _LOOPBACK,
        "dashboard_address": f"{_LOOPBACK}:0",
        "scheduler_kwargs": {"dashboard": False},
    }
