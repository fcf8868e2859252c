"""Evaluate: metrics of a fitted model on held-out rows, and the choice of its
decision threshold on validation rows."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm

from casework.usecases.spec import LOWER_IS_BETTER, ThresholdSpec

__all__ = [
    "ThresholdChoice",
    "aligned_proba",
    "binary_metrics",
    "choose_threshold",
    "cost_metrics",
    "evaluate_metrics",
    "expected_cost",
    "is_better",
    "metric_key",
    "multiclass_metrics",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold on the positive-class probability and how it was found."""

    value: float
    strategy: str
    reached: bool = True
    note: str = ""


def evaluate_metrics(
    y: np.ndarray,
    proba: np.ndarray,
    threshold: float = 0.5,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """All metrics for one set of predictions: binary ones for two classes,
    multi-class ones (computed on the arg-max label) otherwise."""
    if proba.shape[1] == 2:
        return binary_metrics(y, proba[:, 1], threshold)
    return multiclass_metrics(y, proba, class_names)


def aligned_proba(model: Any, X: Any, n_classes: int) -> np.ndarray:
    """``model.predict_proba(X)`` with one column per class index ``0..n_classes-1``.

    A model fitted on rows that lack a class (a time split can do that) has fewer
    columns; the missing classes get probability 0 rather than shifting the others.
    """
    proba = model.predict_proba(X)
    fitted = np.asarray(getattr(model, "classes_", np.arange(proba.shape[1])))
    if proba.shape[1] == n_classes and np.array_equal(fitted, np.arange(n_classes)):
        return proba
    full = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    full[:, fitted.astype(int)] = proba
    return full


def metric_key(name: str) -> str:
    """A class name made safe for an MLflow metric key (letters, digits, ``_.-``)."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", str(name)).strip("_") or "blank"


def binary_metrics(
    y: np.ndarray, positive: np.ndarray, threshold: float
) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier score and log loss, and the counting metrics at
    ``threshold``; ``y`` holds 1 for the positive class."""
    predicted = (positive >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    two_classes = len(np.unique(y)) == 2
    return {
        "roc_auc": float(skm.roc_auc_score(y, positive))
        if two_classes
        else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, positive)),
        "f1": float(skm.f1_score(y, predicted, zero_division=0)),
        "precision": float(skm.precision_score(y, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y, predicted, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "brier": float(skm.brier_score_loss(y, positive)),
        "log_loss": float(
            skm.log_loss(y, np.clip(positive, 1e-15, 1 - 1e-15), labels=[0, 1])
        ),
        "threshold": float(threshold),
        "true_negatives": int(tn),
        "false_positives": int(fp),
        "false_negatives": int(fn),
        "true_positives": int(tp),
    }


def multiclass_metrics(
    y: np.ndarray, proba: np.ndarray, class_names: Sequence[str] | None = None
) -> dict[str, float]:
    """Accuracy, macro-F1, log loss, one-vs-rest ROC-AUC, and recall per class as
    ``recall_<class name>`` (``recall_class_<index>`` when no names are given)."""
    labels = np.arange(proba.shape[1])
    predicted = proba.argmax(axis=1)
    recalls = skm.recall_score(
        y, predicted, labels=labels, average=None, zero_division=0
    )
    result = {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "macro_f1": float(skm.f1_score(y, predicted, labels=labels, average="macro")),
        "log_loss": float(skm.log_loss(y, proba, labels=labels)),
        "roc_auc_ovr": _roc_auc_ovr(y, proba, labels),
    }
    names = (
        [metric_key(name) for name in class_names]
        if class_names is not None
        else [f"class_{index}" for index in labels]
    )
    result.update(
        {f"recall_{name}": float(r) for name, r in zip(names, recalls, strict=True)}
    )
    return result


def is_better(
    metric: str, candidate: float, reference: float, margin: float = 0.0
) -> bool:
    """True when ``candidate`` beats ``reference`` by more than ``margin``."""
    if np.isnan(candidate):
        return False
    if np.isnan(reference):
        return True
    if metric in LOWER_IS_BETTER:
        return candidate < reference - margin
    return candidate > reference + margin


def choose_threshold(
    y: np.ndarray,
    positive: np.ndarray,
    spec: ThresholdSpec,
    false_negative_costs: np.ndarray | None = None,
) -> ThresholdChoice:
    """Pick the decision threshold on validation rows as the spec's strategy says.

    Args:
        y: 1 for positive rows, 0 otherwise.
        positive: the predicted probability of the positive class.
        spec: the threshold settings of the use case.
        false_negative_costs: per-row cost of missing a positive, for the cost
            strategy with ``false_negative_cost_column``.
    """
    if spec.strategy == "default":
        return ThresholdChoice(0.5, "default")
    candidates = _candidate_thresholds(positive)
    if spec.strategy == "max_f1":
        hits, flagged = _flag_counts(y, positive, candidates)
        scored = 2 * hits + (flagged - hits) + ((y == 1).sum() - hits)
        f1 = np.divide(2 * hits, scored, out=np.zeros_like(hits), where=scored > 0)
        return ThresholdChoice(float(candidates[int(np.argmax(f1))]), "max_f1")
    if spec.strategy == "min_recall":
        return _with_minimum(
            y, positive, candidates, "recall", spec.min_recall or 0.0, spec.confidence
        )
    if spec.strategy == "min_precision":
        return _with_minimum(
            y,
            positive,
            candidates,
            "precision",
            spec.min_precision or 0.0,
            spec.confidence,
        )
    return _lowest_cost(y, positive, candidates, spec, false_negative_costs)


def expected_cost(
    y: np.ndarray,
    flagged: np.ndarray,
    false_positive_cost: float,
    false_negative_costs: np.ndarray,
) -> float:
    """Total cost of a set of flags: missed positives plus false alarms."""
    missed = (y == 1) & ~flagged
    false_alarms = (y == 0) & flagged
    return float(
        false_negative_costs[missed].sum() + false_positive_cost * false_alarms.sum()
    )


def cost_metrics(
    y: np.ndarray,
    positive: np.ndarray,
    threshold: float,
    false_positive_cost: float,
    false_negative_costs: np.ndarray,
) -> dict[str, float]:
    """Expected cost of flagging at ``threshold``, beside the two trivial policies.

    Returns:
        ``expected_cost`` at the threshold, ``cost_flag_nothing`` (every positive
        missed), ``cost_flag_everything`` (every negative a false alarm) and
        ``cost_saving`` against the cheaper of the two, all summed over the rows.
    """
    chosen = expected_cost(
        y, positive >= threshold, false_positive_cost, false_negative_costs
    )
    nothing = expected_cost(
        y, np.zeros(len(y), bool), false_positive_cost, false_negative_costs
    )
    everything = expected_cost(
        y, np.ones(len(y), bool), false_positive_cost, false_negative_costs
    )
    return {
        "expected_cost": chosen,
        "cost_flag_nothing": nothing,
        "cost_flag_everything": everything,
        "cost_saving": min(nothing, everything) - chosen,
    }


def _candidate_thresholds(positive: np.ndarray) -> np.ndarray:
    grid = np.unique(
        np.concatenate([np.quantile(positive, np.linspace(0, 1, 201)), [0.5]])
    )
    return grid[(grid > 0.0) & (grid < 1.0)] if len(grid) > 2 else grid


def _with_minimum(
    y: np.ndarray,
    positive: np.ndarray,
    candidates: np.ndarray,
    kind: str,
    minimum: float,
    confidence: float | None = None,
) -> ThresholdChoice:
    """The threshold that meets a minimum recall (or precision) with the best other
    side; the closest one when no threshold meets it.

    With ``confidence``, a threshold meets the minimum only when the Wilson lower
    bound of its rate does, so that few rows cannot meet it by luck.
    """
    hits, precision_n = _flag_counts(y, positive, candidates)
    recall_n = np.full(len(candidates), float((y == 1).sum()))
    recall = np.divide(hits, recall_n, out=np.zeros_like(hits), where=recall_n > 0)
    precision = np.divide(
        hits, precision_n, out=np.zeros_like(hits), where=precision_n > 0
    )

    achieved, other = (recall, precision) if kind == "recall" else (precision, recall)
    n = recall_n if kind == "recall" else precision_n
    bound = _wilson_lower(achieved, n, confidence) if confidence else achieved
    meets = bound >= minimum
    strategy = f"min_{kind}"
    if meets.any():
        best = np.flatnonzero(meets)[np.argmax(other[meets])]
        return ThresholdChoice(float(candidates[best]), strategy)

    best = int(np.argmax(bound))
    held = f" at {confidence:.1%} confidence" if confidence else ""
    lower = f" (lower bound {bound[best]:.3f}{held})" if confidence else ""
    note = (
        f"no threshold reaches {kind} {minimum:.3f}{held} on validation rows; the best "
        f"available is {achieved[best]:.3f}{lower} at threshold {candidates[best]:.4f}"
    )
    logger.warning(note)
    return ThresholdChoice(float(candidates[best]), strategy, reached=False, note=note)


def _wilson_lower(rate: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Wilson lower bound of a proportion ``rate`` observed over ``n`` rows."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(confidence)
    n = np.maximum(n, 1.0)
    centre = rate + z**2 / (2 * n)
    spread = z * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2))
    return (centre - spread) / (1 + z**2 / n)


def _lowest_cost(
    y: np.ndarray,
    positive: np.ndarray,
    candidates: np.ndarray,
    spec: ThresholdSpec,
    false_negative_costs: np.ndarray | None,
) -> ThresholdChoice:
    if false_negative_costs is None:
        false_negative_costs = np.full(len(y), spec.false_negative_cost or 0.0)
    fp_cost = spec.false_positive_cost or 0.0
    hits, flagged = _flag_counts(y, positive, candidates)

    # Missed positives are those scored below the threshold: their costs, summed in
    # order of score, give the cost missed at every threshold at once
    order = np.argsort(positive[y == 1], kind="stable")
    scores = positive[y == 1][order]
    missed = np.concatenate([[0.0], np.cumsum(false_negative_costs[y == 1][order])])
    costs = missed[np.searchsorted(scores, candidates, side="left")]
    costs = costs + fp_cost * (flagged - hits)
    return ThresholdChoice(float(candidates[int(np.argmin(costs))]), "cost")


def _flag_counts(
    y: np.ndarray, positive: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each threshold t, the positive rows flagged (``positive >= t``) and all
    rows flagged, counted by binary search rather than a pass per threshold."""
    of_positives = np.sort(positive[y == 1])
    of_all = np.sort(positive)
    hits = len(of_positives) - np.searchsorted(of_positives, thresholds, side="left")
    flagged = len(of_all) - np.searchsorted(of_all, thresholds, side="left")
    return hits.astype(float), flagged.astype(float)


def _roc_auc_ovr(y: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> float:
    try:
        return float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels))
    except ValueError:  # a class absent from y makes one-vs-rest undefined
        return float("nan")
