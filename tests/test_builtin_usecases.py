"""Tests of the built-in use cases' specs, hooks and sources, without training."""

from __future__ import annotations

import pandas as pd
import pytest

from casework.errors import DataError, SpecError
from casework.tasks.candidates import check_candidates
from casework.usecases import available_usecases, load_usecase
from casework.usecases.disease.data import load_frame
from casework.usecases.quality.hooks import (
    FAULT_COLUMNS,
    fault_type_from_one_hot,
    log_scale_counts,
)


@pytest.fixture(scope="module")
def steel_frame() -> pd.DataFrame:
    spec = load_usecase("quality")
    return pd.read_csv(spec.resolve_path(spec.source.path))


class TestDiscovery:
    def test_all_four_built_ins_are_found_and_valid(self):
        names = set(available_usecases())
        assert {"churn", "quality", "fraud", "disease"} <= names
        for name in ("quality", "fraud", "disease"):
            spec = load_usecase(name)
            check_candidates(spec.candidates, spec.name, spec.candidate_params)

    def test_fraud_splits_by_time_and_chooses_its_threshold_by_cost(self):
        spec = load_usecase("fraud")
        assert spec.split.strategy == "time" and spec.split.column == "Time"
        assert spec.metric.primary == "pr_auc"
        assert spec.threshold.false_negative_cost_column == "Amount"
        assert spec.deduplicate

    def test_disease_asks_for_a_minimum_recall(self):
        spec = load_usecase("disease")
        assert spec.threshold.strategy == "min_recall"
        assert spec.threshold.min_recall == 0.95


class TestCandidateParams:
    def test_a_parameter_the_estimator_lacks_is_a_spec_error(self):
        with pytest.raises(
            SpecError, match=r"candidate_params.random_forest sets \['n_trees'\]"
        ):
            check_candidates(["random_forest"], "x", {"random_forest": {"n_trees": 5}})

    def test_params_for_an_unknown_candidate_are_refused(self):
        with pytest.raises(SpecError, match=r"candidate_params names 'xgboost'"):
            check_candidates(["random_forest"], "x", {"xgboost": {"depth": 3}})

    def test_choosing_fewer_candidates_keeps_the_params_of_the_others_valid(self):
        spec = load_usecase("quality").with_overrides(
            candidates=["logistic_regression"]
        )
        check_candidates(spec.candidates, spec.name, spec.candidate_params)


class TestQualityHooks:
    def test_the_seven_fault_columns_become_one_label(self, steel_frame):
        prepared = fault_type_from_one_hot(steel_frame)
        assert not set(FAULT_COLUMNS) & set(prepared.columns)
        counts = prepared["fault_type"].value_counts()
        assert counts["Other_Faults"] == 673 and counts["Dirtiness"] == 55
        assert len(counts) == 7

    def test_a_plate_with_two_faults_is_refused(self, steel_frame):
        frame = steel_frame.head(5).copy()
        frame.loc[2, "Bumps"] = 1
        frame.loc[2, "Pastry"] = 1
        with pytest.raises(DataError, match=r"1 rows do not flag exactly one"):
            fault_type_from_one_hot(frame)

    def test_skewed_counts_are_log_scaled_and_others_kept(self, steel_frame):
        scaled = log_scale_counts(steel_frame)
        assert scaled["Pixels_Areas"].max() < 12
        pd.testing.assert_series_equal(scaled["X_Minimum"], steel_frame["X_Minimum"])


class TestDiseaseSource:
    def test_the_breast_cancer_rows_come_with_a_readable_diagnosis(self):
        frame = load_frame()
        assert frame.shape == (569, 31)
        assert frame["diagnosis"].value_counts().to_dict() == {
            "benign": 357,
            "malignant": 212,
        }
