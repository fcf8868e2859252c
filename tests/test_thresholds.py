"""Threshold rules: the same choice as scoring every candidate threshold one by one,
and minimum rates guarded against small samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from casework.tasks import train as train_stage
from casework.tasks.candidates import make_candidate
from casework.tasks.clean import TabularCleaner, build_model_pipeline
from casework.tasks.evaluate import (
    ThresholdChoice,
    _candidate_thresholds,
    choose_threshold,
    expected_cost,
)
from casework.tasks.train import CandidateResult, tune_threshold
from casework.usecases.spec import ThresholdSpec


def _scores(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    return y, np.clip(0.35 * y + rng.normal(0.35, 0.15, n), 0.001, 0.999)


class TestSameChoiceAsOneByOne:
    """Counted by binary search, each rule picks what scoring every candidate
    threshold with scikit-learn's metrics picks, ties and repeated scores included."""

    @pytest.fixture(params=[0, 1, 2])
    def scores(self, request) -> tuple[np.ndarray, np.ndarray]:
        y, positive = _scores(request.param)
        # Repeated scores, as a tree model gives, put rows on the thresholds
        return y, np.round(positive, 2)

    def test_max_f1(self, scores):
        y, positive = scores
        candidates = _candidate_thresholds(positive)
        f1 = [skm.f1_score(y, positive >= t, zero_division=0) for t in candidates]

        choice = choose_threshold(y, positive, ThresholdSpec(strategy="max_f1"))

        assert choice.value == candidates[int(np.argmax(f1))]

    def test_min_recall(self, scores):
        y, positive = scores
        candidates = _candidate_thresholds(positive)
        recall = np.array([skm.recall_score(y, positive >= t) for t in candidates])
        precision = np.array(
            [skm.precision_score(y, positive >= t, zero_division=0) for t in candidates]
        )
        meets = np.flatnonzero(recall >= 0.8)

        choice = choose_threshold(
            y, positive, ThresholdSpec(strategy="min_recall", min_recall=0.8)
        )

        assert choice.value == candidates[meets[np.argmax(precision[meets])]]

    def test_lowest_cost_with_a_cost_per_row(self, scores):
        y, positive = scores
        amounts = np.random.default_rng(5).gamma(2.0, 40.0, len(y))
        spec = ThresholdSpec(
            strategy="cost", false_positive_cost=25.0, false_negative_cost_column="x"
        )
        candidates = _candidate_thresholds(positive)
        costs = [expected_cost(y, positive >= t, 25.0, amounts) for t in candidates]

        choice = choose_threshold(y, positive, spec, amounts)

        assert choice.value == candidates[int(np.argmin(costs))]


class TestMinimumWithConfidence:
    def test_confidence_moves_the_threshold_down_to_catch_more(self):
        y, positive = _scores()
        plain = choose_threshold(
            y, positive, ThresholdSpec(strategy="min_recall", min_recall=0.9)
        )
        guarded = choose_threshold(
            y,
            positive,
            ThresholdSpec(strategy="min_recall", min_recall=0.9, confidence=0.9),
        )
        assert guarded.reached and plain.reached
        assert guarded.value < plain.value
        assert ((positive >= guarded.value) & (y == 1)).sum() > (
            (positive >= plain.value) & (y == 1)
        ).sum()

    def test_unreachable_minimum_at_confidence_is_flagged(self):
        y, positive = np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.8, 0.1])
        choice = choose_threshold(
            y,
            positive,
            ThresholdSpec(strategy="min_recall", min_recall=0.99, confidence=0.95),
        )
        assert not choice.reached
        # Recall 1.000 on two rows, but its lower bound stays below the minimum
        assert choice.note.startswith(
            "no threshold reaches recall 0.990 at 95.0% confidence on validation "
            "rows; the best available is 1.000 (lower bound 0."
        )


class TestTuneThreshold:
    def _winner(self, X: pd.DataFrame, y: np.ndarray) -> CandidateResult:
        cleaner = TabularCleaner().fit(X)
        pipeline = build_model_pipeline(
            cleaner, make_candidate("logistic_regression", 0)
        )
        return CandidateResult(
            "logistic_regression",
            pipeline.fit(X, y),
            ThresholdChoice(0.5, "min_recall"),
            {},
            0.0,
        )

    def _rows(self) -> tuple[pd.DataFrame, np.ndarray]:
        rng = np.random.default_rng(1)
        y = (rng.random(300) < 0.4).astype(int)
        return pd.DataFrame(
            {"x": y + rng.normal(0, 0.8, 300), "z": rng.normal(size=300)}
        ), y

    def test_few_validation_positives_choose_again_on_out_of_fold_rows(self):
        X, y = self._rows()
        spec = ThresholdSpec(strategy="min_recall", min_recall=0.9)
        choice = tune_threshold.fn(
            self._winner(X, y), X, y, spec, 0, validation_positives=30
        )
        assert choice.value != 0.5
        assert choice.strategy == "min_recall"

    def test_enough_validation_positives_keep_the_validation_threshold(self):
        X, y = self._rows()
        spec = ThresholdSpec(strategy="min_recall", min_recall=0.9)
        many = train_stage.MIN_VALIDATION_POSITIVES
        choice = tune_threshold.fn(
            self._winner(X, y), X, y, spec, 0, validation_positives=many
        )
        assert choice.value == pytest.approx(0.5)
