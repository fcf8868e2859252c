"""Validation of raw rows against the spec, and target normalisation."""

from __future__ import annotations

import pandas as pd
import pytest

from casework.errors import DataError
from casework.tasks import validate as validate_stage
from casework.tasks.validate import normalise_labels, validate
from casework.usecases.spec import UseCaseSpec


def _spec(**fields: object) -> UseCaseSpec:
    base = {
        "name": "demo",
        "source": {"kind": "csv", "path": "x.csv"},
        "target": {"column": "Churn", "positive": "Yes"},
        "id_columns": ["id"],
    }
    return UseCaseSpec.model_validate({**base, **fields})


def _frame(labels: list[object]) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame({"id": range(n), "x": range(n), "Churn": labels})


class TestNormaliseLabels:
    def test_case_and_space_variants_are_one_class(self):
        labels, merged = normalise_labels(
            pd.Series(["Yes", " yes", "YES", "No", "no "]), "Yes"
        )
        assert labels.tolist() == ["Yes", "Yes", "Yes", "No", "No"]
        assert merged["Yes"] == [" yes", "YES", "Yes"]

    def test_whole_number_floats_read_as_integers(self):
        labels, _ = normalise_labels(pd.Series([1.0, 0.0, 1.0]))
        assert labels.tolist() == ["1", "0", "1"]


class TestValidate:
    @pytest.fixture(autouse=True)
    def _few_rows_allowed(self, monkeypatch):
        # These cases use a handful of rows; the minimum has its own test below.
        monkeypatch.setattr(validate_stage, "MIN_ROWS", 1)

    def test_target_is_encoded_with_positive_as_one(self):
        data = validate.fn(_frame(["Yes", " yes", "No", "YES", "no", "NO"]), _spec())
        assert data.classes == ["No", "Yes"]
        assert data.y.tolist() == [1, 1, 0, 1, 0, 0]
        assert "id" not in data.X.columns and "Churn" not in data.X.columns

    def test_missing_target_column_lists_the_columns_there_are(self):
        frame = _frame(["Yes", "No"]).drop(columns="Churn")
        with pytest.raises(
            DataError, match=r"target column 'Churn' not found; .*\['id', 'x'\]"
        ):
            validate.fn(frame, _spec())

    def test_single_class_target_is_refused(self):
        with pytest.raises(DataError, match=r"single class \('No'\)"):
            validate.fn(_frame(["No", "no ", "NO"]), _spec())

    def test_absent_positive_label_is_named(self):
        with pytest.raises(DataError, match=r"positive label 'Yes' .* does not occur"):
            validate.fn(_frame(["Maybe", "No"]), _spec())

    def test_id_column_absent_from_data_is_named(self):
        frame = _frame(["Yes", "No"]).drop(columns="id")
        with pytest.raises(DataError, match=r"id_columns names \['id'\]"):
            validate.fn(frame, _spec())

    def test_rows_without_target_are_dropped_and_reported(self):
        labels = ["Yes", None, "No", " "] + ["Yes", "No"] * 2
        data = validate.fn(_frame(labels), _spec())
        assert data.report.rows_without_target == 2
        assert len(data.y) == 6

    def test_report_counts_duplicates_constants_and_missing_cells(self):
        frame = pd.DataFrame(
            {
                "id": [1, 1, 2, 3, 4, 5],
                "x": [5] * 6,
                "gap": [None] * 6,
                "Churn": ["Yes", "Yes", "No", "No", "No", "Yes"],
            }
        )
        report = validate.fn(frame, _spec()).report
        assert report.duplicate_rows == 1
        assert report.constant_columns == ["x"]
        assert report.empty_columns == ["gap"]
        assert report.missing_cells["gap"] == 6
        assert report.class_balance == {"No": 3, "Yes": 3}


class TestTargetSanity:
    def test_too_few_rows_are_refused(self):
        with pytest.raises(
            DataError, match=r"10 rows with a value in 'Churn'; at least 50"
        ):
            validate.fn(_frame(["Yes", "No"] * 5), _spec())

    def test_all_blank_target_is_refused_not_crashed(self):
        with pytest.raises(DataError, match=r"0 rows with a value in 'Churn'"):
            validate.fn(_frame([" "] * 60), _spec())

    def test_stray_third_label_in_a_binary_target_is_named(self):
        labels = ["Yes", "No"] * 30 + ["Maybe"] * 6
        with pytest.raises(
            DataError, match=r"3 labels \['Maybe', 'No', 'Yes'\].*positive"
        ):
            validate.fn(_frame(labels), _spec())

    def test_binary_metric_on_a_multi_class_target_is_refused(self):
        labels = ["a", "b", "c"] * 20
        spec = _spec(target={"column": "Churn"}, metric={"primary": "roc_auc"})
        with pytest.raises(DataError, match=r"'roc_auc' does not fit the multi-class"):
            validate.fn(_frame(labels), spec)
