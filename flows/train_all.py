"""Training every use case at once: one ``train`` subflow per use case.

Each use case trains in a task of the parent flow ``train-all``, so use cases run
concurrently on the flow's task runner (threads, or a Dask cluster), and each
shows up in the Prefect UI as its own ``train-<usecase>`` flow run. A use case that
fails is recorded with its one-line error; the others carry on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from casework.errors import CaseworkError, TrackingError
from casework.flows.train import train
from casework.tasks import track
from casework.usecases import available_usecases, load_usecase

__all__ = ["UseCaseOutcome", "train_all", "train_usecase"]

logger = logging.getLogger(__name__)


@dataclass
class UseCaseOutcome:
    """How training one use case ended, for the summary table."""

    usecase: str
    ok: bool
    seconds: float
    winner: str = ""
    metric: str = ""
    test_score: float = float("nan")
    version: str = ""
    aliases: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@flow(name="train-all", flow_run_name="train-all", log_prints=True)
def train_all(
    usecases: list[str] | None = None,
    candidates: list[str] | None = None,
    register_winner: bool = True,
) -> list[dict[str, Any]]:
    """Train several use cases concurrently, each as its own ``train`` flow run.

    Args:
        usecases: use-case names or paths to usecase.yaml files; empty trains every
            use case casework can find (built-ins and installed plug-ins).
        candidates: candidate models for every use case, instead of each spec's
            list; empty keeps each spec's list.
        register_winner: register each winner in the MLflow registry (default true).

    Returns:
        One outcome per use case, in the order asked, as dicts (see
        :class:`UseCaseOutcome`).
    """
    names = list(usecases or available_usecases())
    failed, ready = _open_experiments(names)

    # Fan out: one task (and train subflow) per use case on the flow's task runner
    futures = {
        name: train_usecase.submit(name, candidates, register_winner) for name in ready
    }
    outcomes = {name: future.result() for name, future in futures.items()}
    outcomes.update(failed)

    ordered = [outcomes[name] for name in names]
    for outcome in ordered:
        if not outcome.ok:
            logger.error("Use case %s failed: %s", outcome.usecase, outcome.error)
    return [outcome.as_dict() for outcome in ordered]


@task(name="train-usecase", task_run_name="train-{usecase}", cache_policy=NO_CACHE)
def train_usecase(
    usecase: str, candidates: list[str] | None, register_winner: bool
) -> UseCaseOutcome:
    """Run the ``train`` flow of one use case; a failure becomes an outcome, not an
    exception, so that the other use cases go on."""
    started = time.perf_counter()
    try:
        summary = train(
            usecase=usecase, candidates=candidates, register_winner=register_winner
        )
    except Exception as exc:  # one use case's failure must not stop the others
        return UseCaseOutcome(
            usecase, False, time.perf_counter() - started, error=_one_line(exc)
        )
    metric = summary["primary_metric"]
    return UseCaseOutcome(
        usecase,
        True,
        time.perf_counter() - started,
        winner=summary["winner"],
        metric=metric,
        test_score=summary["test_metrics"].get(metric, float("nan")),
        version=summary["version"] or "",
        aliases=", ".join(summary["aliases"]),
    )


def _open_experiments(
    names: list[str],
) -> tuple[dict[str, UseCaseOutcome], list[str]]:
    """Load each spec and open its MLflow experiment, one after the other.

    Doing this before the fan-out creates a fresh SQLite tracking store once,
    instead of by several writers at a time. A spec that does not load fails its
    use case only; a tracking store that cannot be reached fails them all.
    """
    failed: dict[str, UseCaseOutcome] = {}
    ready: list[str] = []
    for name in names:
        try:
            spec = load_usecase(name)
            track.connect(spec.name)
        except TrackingError:
            raise
        except CaseworkError as exc:
            failed[name] = UseCaseOutcome(name, False, 0.0, error=str(exc))
            continue
        ready.append(name)
    return failed, ready


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, CaseworkError):
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
