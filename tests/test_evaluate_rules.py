"""Tests of the shared evaluate stage: class names, expected cost, threshold rules."""

from __future__ import annotations

import numpy as np

from casework.tasks.evaluate import (
    aligned_proba,
    choose_threshold,
    cost_metrics,
    evaluate_metrics,
    metric_key,
)
from casework.usecases.spec import ThresholdSpec


class TestMulticlassMetrics:
    def test_per_class_recall_is_keyed_by_class_name(self):
        y = np.array([0, 1, 2, 2])
        proba = np.eye(3)[[0, 1, 2, 0]]
        metrics = evaluate_metrics(
            y, proba, class_names=["Bumps", "K_Scatch", "Z Scratch"]
        )
        assert metrics["recall_Bumps"] == 1.0
        assert metrics["recall_K_Scatch"] == 1.0
        assert metrics["recall_Z_Scratch"] == 0.5

    def test_class_names_are_made_safe_for_mlflow_keys(self):
        assert metric_key("Other faults (misc)") == "Other_faults_misc"

    def test_probabilities_of_a_model_that_never_saw_a_class_are_widened(self):
        class Partial:
            classes_ = np.array([0, 2])

            def predict_proba(self, X):
                return np.array([[0.3, 0.7]])

        proba = aligned_proba(Partial(), None, 3)
        assert proba.tolist() == [[0.3, 0.0, 0.7]]


class TestExpectedCost:
    def test_cost_of_the_threshold_is_reported_beside_the_trivial_policies(self):
        y = np.array([1, 0, 0, 1])
        positive = np.array([0.9, 0.8, 0.1, 0.2])
        amounts = np.array([100.0, 1.0, 1.0, 40.0])
        costs = cost_metrics(y, positive, 0.5, 5.0, amounts)
        assert costs["expected_cost"] == 40.0 + 5.0
        assert costs["cost_flag_nothing"] == 140.0
        assert costs["cost_flag_everything"] == 10.0
        assert costs["cost_saving"] == 10.0 - 45.0

    def test_cost_threshold_flags_the_expensive_misses(self):
        y = np.array([1, 1, 0, 0, 0, 0])
        positive = np.array([0.6, 0.3, 0.2, 0.1, 0.05, 0.4])
        spec = ThresholdSpec(
            strategy="cost", false_positive_cost=5, false_negative_cost_column="Amount"
        )
        amounts = np.array([500.0, 500.0, 1, 1, 1, 1])
        choice = choose_threshold(y, positive, spec, amounts)
        assert choice.value <= 0.3


class TestMinimumRecall:
    def test_an_unreachable_minimum_recall_is_said_and_the_best_is_kept(self):
        # A positive row scored exactly 0 can never be flagged: recall stops at 0.5.
        y = np.array([1, 1, 0, 0, 0])
        positive = np.array([0.0, 0.8, 0.5, 0.1, 0.3])
        spec = ThresholdSpec(strategy="min_recall", min_recall=0.95)
        choice = choose_threshold(y, positive, spec)
        assert not choice.reached
        assert "no threshold reaches recall 0.950" in choice.note
        assert "best available is 0.500" in choice.note

    def test_a_reachable_minimum_recall_keeps_the_best_precision(self):
        y = np.array([1, 1, 0, 0, 0])
        positive = np.array([0.9, 0.8, 0.5, 0.1, 0.3])
        spec = ThresholdSpec(strategy="min_recall", min_recall=0.95)
        choice = choose_threshold(y, positive, spec)
        assert choice.reached
        assert 0.5 < choice.value <= 0.8
