"""Tests of bad inputs for the new use cases: rare classes, time columns, cost columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from casework.errors import DataError
from casework.tasks.split import Split, split
from casework.tasks.validate import validate
from casework.usecases.spec import UseCaseSpec


def _spec(**fields: object) -> UseCaseSpec:
    base = {
        "name": "bad",
        "source": {"kind": "csv", "path": "unused.csv"},
        "target": {"column": "label"},
        "candidates": ["logistic_regression"],
    }
    return UseCaseSpec.model_validate({**base, **fields})


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "when": np.arange(n, dtype=float),
            "Amount": rng.uniform(1, 100, size=n),
            "label": np.where(np.arange(n) % 3 == 0, "yes", "no"),
        }
    )


class TestRareClasses:
    def test_a_class_of_one_row_is_a_clear_error_naming_it(self):
        frame = _frame()
        frame.loc[:29, "label"] = "a"
        frame.loc[30:58, "label"] = "b"
        frame.loc[59, "label"] = "lonely"
        spec = _spec(metric={"primary": "macro_f1"})
        with pytest.raises(DataError, match=r"'lonely' \(1 row\).*at least 3 rows"):
            validate.fn(frame, spec)

    def test_three_rows_per_class_are_enough_to_split(self):
        frame = _frame()
        frame["label"] = ["a"] * 27 + ["b"] * 30 + ["c"] * 3
        spec = _spec(metric={"primary": "macro_f1"})
        data = validate.fn(frame, spec)
        parts = split.fn(data, spec.split)
        assert len(parts.train) + len(parts.validation) + len(parts.test) == 60


class TestFeatureColumns:
    def test_no_feature_left_is_an_error_saying_why(self):
        spec = _spec(drop_columns=["x", "when", "Amount"])
        with pytest.raises(DataError, match=r"^bad: no feature columns left"):
            validate.fn(_frame(), spec)


class TestTimeSplitColumn:
    def test_missing_times_are_an_error_naming_the_column(self):
        frame = _frame()
        frame.loc[4, "when"] = np.nan
        with pytest.raises(DataError, match=r"'when' has 1 missing values"):
            _split_on_when(frame)

    @pytest.mark.parametrize(
        ("odd_one", "problem"),
        [
            ("last tuesday", r"'when'.*neither numbers nor dates.*last tuesday"),
            ("0", r"'when' mixes numbers \(1 values, e.g. '0'"),
        ],
        ids=["unparsable", "number-among-dates"],
    )
    def test_one_odd_value_among_dates_is_an_error_showing_it(self, odd_one, problem):
        frame = _frame()
        frame["when"] = pd.date_range("2024-01-01", periods=60).astype(str)
        frame.loc[7, "when"] = odd_one
        with pytest.raises(DataError, match=problem):
            _split_on_when(frame)

    def test_latest_rows_of_one_class_are_an_error_before_training(self):
        frame = _frame()
        frame.loc[45:, "label"] = "no"  # the 12 test rows, the latest by "when"
        with pytest.raises(DataError) as raised:
            _split_on_when(frame)
        assert str(raised.value) == (
            "split (by time on 'when'): all 12 test rows are of class 'no'; every "
            "part needs two classes at least: use more rows, a larger test_size or "
            "validation_size, or another split"
        )

    def test_numbers_stored_as_text_order_the_rows(self):
        frame = _frame()
        frame["when"] = [str(60 - i) for i in range(60)]
        parts = _split_on_when(frame)
        assert set(parts.test) == set(range(len(parts.test)))

    def test_a_time_column_the_data_lacks_is_an_error_before_splitting(self):
        spec = _spec(split={"strategy": "time", "column": "Time"})
        with pytest.raises(DataError, match=r"split.column names \['Time'\]"):
            validate.fn(_frame(), spec)


class TestCostColumn:
    def _cost_spec(self, column: str) -> UseCaseSpec:
        return _spec(
            target={"column": "label", "positive": "yes"},
            threshold={
                "strategy": "cost",
                "false_positive_cost": 5,
                "false_negative_cost_column": column,
            },
        )

    def test_a_cost_column_that_does_not_exist_is_named_with_the_columns_there(self):
        with pytest.raises(
            DataError,
            match=r"false_negative_cost_column names \['Amout'\].*'Amount'",
        ):
            validate.fn(_frame(), self._cost_spec("Amout"))

    def test_costs_that_are_not_numbers_are_an_error(self):
        frame = _frame()
        frame["Amount"] = frame["Amount"].astype(object)
        frame.loc[3, "Amount"] = "n/a"
        with pytest.raises(DataError, match=r"cost column 'Amount'.*'n/a'"):
            validate.fn(frame, self._cost_spec("Amount"))

    def test_costs_follow_the_rows_left_after_deduplication(self):
        frame = pd.concat([_frame(), _frame().head(2)], ignore_index=True)
        spec = self._cost_spec("Amount").with_overrides(deduplicate=True)
        data = validate.fn(frame, spec)
        assert data.report.duplicates_removed == 2
        assert data.false_negative_costs is not None
        np.testing.assert_allclose(data.false_negative_costs, data.X["Amount"])


def _split_on_when(frame: pd.DataFrame) -> Split:
    """``frame`` validated and split by time on its ``when`` column."""
    spec = _spec(split={"strategy": "time", "column": "when"})
    return split.fn(validate.fn(frame, spec), spec.split)
