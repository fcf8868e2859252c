"""Train: fit each candidate on the training rows, score it on the validation rows,
pick the winner, and refit the winner on training and validation rows together."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from casework.tasks.candidates import make_candidate
from casework.tasks.clean import TabularCleaner, build_model_pipeline
from casework.tasks.evaluate import (
    ThresholdChoice,
    aligned_proba,
    choose_threshold,
    evaluate_metrics,
    is_better,
)
from casework.usecases.spec import MetricSpec, ThresholdSpec

__all__ = [
    "CandidateResult",
    "TrainingRows",
    "refit_winner",
    "select_winner",
    "train_candidate",
    "tune_threshold",
]

logger = logging.getLogger(__name__)

# A validation part with fewer positive rows than this gives a noisy threshold (the
# disease data has about 34); the threshold then comes from out-of-fold predictions.
MIN_VALIDATION_POSITIVES = 200
THRESHOLD_FOLDS = 5


@dataclass
class TrainingRows:
    """Everything a candidate is fitted and judged on, shared by all candidates."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_validation: pd.DataFrame
    y_validation: np.ndarray
    cleaner: TabularCleaner
    features_hook: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    validation_fn_costs: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)


@dataclass
class CandidateResult:
    """A fitted candidate and how it did on the validation rows."""

    name: str
    pipeline: Pipeline
    threshold: ThresholdChoice | None
    validation_metrics: dict[str, float]
    fit_seconds: float
    params: dict[str, str] = field(default_factory=dict)

    def score(self, metric: str) -> float:
        return self.validation_metrics.get(metric, float("nan"))


@task(name="train-candidate", task_run_name="train-{name}", cache_policy=NO_CACHE)
def train_candidate(
    name: str,
    rows: TrainingRows,
    threshold_spec: ThresholdSpec,
    seed: int,
    params: dict[str, Any] | None = None,
) -> CandidateResult:
    """Fit one candidate on the training rows and measure it on the validation rows.

    Args:
        params: estimator parameters from the spec's ``candidate_params``, set over
            casework's defaults.
    """
    started = time.perf_counter()
    estimator = make_candidate(name, seed, params)
    pipeline = build_model_pipeline(rows.cleaner, estimator, rows.features_hook)
    # Candidates fit side by side: an OpenMP pool per candidate (gradient boosting)
    # would ask for every core each and spin against the others. OpenMP's limit is
    # per thread, so this one holds for this task's thread only.
    with threadpool_limits(limits=1, user_api="openmp"):
        pipeline.fit(rows.X_train, rows.y_train)
    fit_seconds = time.perf_counter() - started

    n_classes = len(rows.class_names) or len(np.unique(rows.y_train))
    proba = aligned_proba(pipeline, rows.X_validation, n_classes)
    threshold = None
    if proba.shape[1] == 2:
        threshold = choose_threshold(
            rows.y_validation, proba[:, 1], threshold_spec, rows.validation_fn_costs
        )
    metrics = evaluate_metrics(
        rows.y_validation,
        proba,
        threshold.value if threshold else 0.5,
        rows.class_names or None,
    )
    logger.info(
        "Candidate %s fitted in %.1f s: %s",
        name,
        fit_seconds,
        _short(metrics),
    )
    params = {
        key: repr(value) for key, value in estimator.get_params(deep=False).items()
    }
    return CandidateResult(name, pipeline, threshold, metrics, fit_seconds, params)


def select_winner(
    results: list[CandidateResult], metric: MetricSpec
) -> CandidateResult:
    """The candidate with the best primary metric on validation rows; ties go to the
    one listed first in the spec."""
    winner = results[0]
    for result in results[1:]:
        if is_better(
            metric.primary, result.score(metric.primary), winner.score(metric.primary)
        ):
            winner = result
    logger.info(
        "Winner on validation rows: %s (%s %.4f)",
        winner.name,
        metric.primary,
        winner.score(metric.primary),
    )
    return winner


@task(name="refit-winner", cache_policy=NO_CACHE)
def refit_winner(winner: CandidateResult, X: pd.DataFrame, y: np.ndarray) -> Pipeline:
    """The winner's pipeline, fitted again on training and validation rows together."""
    started = time.perf_counter()
    pipeline = clone(winner.pipeline)
    pipeline.fit(X, y)
    logger.info(
        "Refitted %s on %d rows in %.1f s",
        winner.name,
        len(X),
        time.perf_counter() - started,
    )
    return pipeline


@task(name="tune-threshold", cache_policy=NO_CACHE)
def tune_threshold(
    winner: CandidateResult,
    X: pd.DataFrame,
    y: np.ndarray,
    threshold_spec: ThresholdSpec,
    seed: int,
    validation_positives: int,
    fn_costs: np.ndarray | None = None,
) -> ThresholdChoice | None:
    """The winner's threshold, chosen again on out-of-fold predictions over training
    and validation rows (``X``, ``y``) when the validation part alone held fewer than
    ``MIN_VALIDATION_POSITIVES`` positive rows.

    Otherwise, and for multi-class targets or the default strategy, the threshold
    chosen on the validation rows stands.
    """
    if winner.threshold is None or threshold_spec.strategy == "default":
        return winner.threshold
    if validation_positives >= MIN_VALIDATION_POSITIVES:
        return winner.threshold

    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(THRESHOLD_FOLDS, shuffle=True, random_state=seed)
    proba = cross_val_predict(
        clone(winner.pipeline), X, y, cv=folds, method="predict_proba"
    )
    choice = choose_threshold(y, proba[:, 1], threshold_spec, fn_costs)
    logger.info(
        "Threshold of %s from %d-fold out-of-fold predictions on %d rows: %.4f "
        "(validation rows alone gave %.4f)",
        winner.name,
        THRESHOLD_FOLDS,
        len(y),
        choice.value,
        winner.threshold.value,
    )
    return choice


def _short(metrics: dict[str, float]) -> str:
    shown = ("roc_auc", "pr_auc", "f1", "macro_f1", "accuracy")
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in shown if k in metrics)
