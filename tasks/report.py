"""Report: the refitted winner judged on the test rows (metrics, costs against the
trivial policies, what its threshold costs in precision) and its plots, logged to
the MLflow run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sklearn import metrics as skm
from sklearn.pipeline import Pipeline

from casework.tasks.evaluate import (
    ThresholdChoice,
    aligned_proba,
    cost_metrics,
    evaluate_metrics,
)
from casework.tasks.plots import (
    SCORERS,
    binary_figures,
    column_importance,
    importance_figure,
    multiclass_figures,
)
from casework.usecases.spec import ThresholdSpec

__all__ = ["TestEvaluation", "evaluate_test", "log_plots"]

logger = logging.getLogger(__name__)

PLOT_DIR = "plots"


@dataclass
class TestEvaluation:
    """How the final model did on the test rows."""

    __test__ = False  # not a pytest test class, despite the name

    proba: np.ndarray
    metrics: dict[str, float]
    threshold: ThresholdChoice | None
    class_names: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def is_binary(self) -> bool:
        return len(self.class_names) == 2


@task(name="evaluate-test", cache_policy=NO_CACHE)
def evaluate_test(
    pipeline: Pipeline,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    class_names: list[str],
    threshold: ThresholdChoice | None,
    threshold_spec: ThresholdSpec,
    false_negative_costs: np.ndarray | None = None,
) -> TestEvaluation:
    """Metrics of the final model on the test rows, at the threshold chosen on
    validation rows.

    For the cost strategy, adds the expected cost against flagging nothing and
    flagging everything; for a minimum recall or precision, adds precision and
    recall at the default 0.5, to show what the threshold costs.

    Args:
        false_negative_costs: per-row cost of missing each test row, for the cost
            strategy with a cost column; else the spec's fixed cost is used.
    """
    proba = aligned_proba(pipeline, X_test, len(class_names))
    value = threshold.value if threshold else 0.5
    metrics = evaluate_metrics(y_test, proba, value, class_names)
    notes = [threshold.note] if threshold and threshold.note else []
    if proba.shape[1] == 2:
        metrics.update(
            _threshold_trade_off(y_test, proba[:, 1], value, threshold_spec, notes)
        )
        if threshold_spec.strategy == "cost":
            costs = _false_negative_costs(threshold_spec, false_negative_costs, y_test)
            metrics.update(
                cost_metrics(
                    y_test,
                    proba[:, 1],
                    value,
                    threshold_spec.false_positive_cost or 0.0,
                    costs,
                )
            )
    return TestEvaluation(proba, metrics, threshold, list(class_names), notes)


@task(name="log-plots", cache_policy=NO_CACHE)
def log_plots(
    pipeline: Pipeline,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    evaluation: TestEvaluation,
    primary_metric: str,
    run_id: str,
    seed: int = 0,
) -> pd.DataFrame:
    """Draw the evaluation plots and permutation importance, log them under
    ``plots/`` of the MLflow run ``run_id``, and return the importance table.

    The run is named, not taken from MLflow's active run: this task runs in a
    worker thread, beside the flow's own work.
    """
    from mlflow import MlflowClient

    started = time.perf_counter()
    if evaluation.is_binary:
        threshold = evaluation.threshold.value if evaluation.threshold else 0.5
        figures = binary_figures(
            y_test, evaluation.proba[:, 1], threshold, evaluation.class_names
        )
    else:
        figures = multiclass_figures(y_test, evaluation.proba, evaluation.class_names)

    scoring = _importance_scoring(primary_metric, evaluation.is_binary)
    importance = column_importance(pipeline, X_test, y_test, scoring, seed=seed)
    figures["permutation_importance.png"] = importance_figure(importance, scoring)

    client = MlflowClient()
    for name, figure in figures.items():
        client.log_figure(run_id, figure, f"{PLOT_DIR}/{name}")
    client.log_text(
        run_id,
        importance.to_csv(index=False),
        f"{PLOT_DIR}/permutation_importance.csv",
    )
    logger.info(
        "Logged %d plots in %.1f s", len(figures), time.perf_counter() - started
    )
    return importance


def _threshold_trade_off(
    y: np.ndarray,
    positive: np.ndarray,
    threshold: float,
    spec: ThresholdSpec,
    notes: list[str],
) -> dict[str, float]:
    """Precision and recall at the default 0.5 beside the chosen threshold, and a
    note when a minimum set in the spec is missed on the test rows."""
    at_default = positive >= 0.5
    trade_off = {
        "precision_at_0_5": float(skm.precision_score(y, at_default, zero_division=0)),
        "recall_at_0_5": float(skm.recall_score(y, at_default, zero_division=0)),
    }
    flagged = positive >= threshold
    for kind, minimum, score in (
        ("recall", spec.min_recall, skm.recall_score),
        ("precision", spec.min_precision, skm.precision_score),
    ):
        if spec.strategy != f"min_{kind}" or minimum is None:
            continue
        achieved = float(score(y, flagged, zero_division=0))
        if achieved < minimum:
            notes.append(
                f"on test rows the {kind} at threshold {threshold:.4f} is "
                f"{achieved:.3f}, below the spec's minimum {minimum:.3f}"
            )
    return trade_off


def _false_negative_costs(
    spec: ThresholdSpec, per_row: np.ndarray | None, y: np.ndarray
) -> np.ndarray:
    if per_row is not None:
        return per_row
    return np.full(len(y), spec.false_negative_cost or 0.0)


def _importance_scoring(primary_metric: str, is_binary: bool) -> str:
    scoring = SCORERS.get(primary_metric)
    binary_only = {"roc_auc", "average_precision", "f1", "neg_brier_score"}
    if scoring is None or (not is_binary and scoring in binary_only):
        return "roc_auc" if is_binary else "f1_macro"
    return scoring
