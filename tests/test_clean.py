"""The cleaning transformer and the model pipeline it heads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from casework.errors import SchemaError
from casework.tasks.candidates import make_candidate
from casework.tasks.clean import (
    TabularCleaner,
    build_model_pipeline,
    coerce_numeric_text,
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": [1, 5, 12, 30, 2, 48],
            "total": ["10.5", " ", "200", "1200.25", "20", "3000"],
            "plan": ["basic", "pro", " pro", "basic", "basic ", "pro"],
            "notes": [np.nan] * 6,
        }
    )


class TestTabularCleaner:
    def test_numbers_stored_as_text_become_numeric(self):
        cleaner = TabularCleaner().fit(_frame())
        assert cleaner.numeric_text_columns_ == ["total"]
        assert cleaner.numeric_columns_ == ["tenure", "total"]
        assert cleaner.transform(_frame())["total"].dtype == np.float64

    def test_blank_text_cell_becomes_missing(self):
        cleaned = TabularCleaner().fit(_frame()).transform(_frame())
        assert np.isnan(cleaned["total"].iloc[1])
        assert cleaned["total"].iloc[3] == pytest.approx(1200.25)

    def test_entirely_empty_column_is_dropped(self):
        cleaner = TabularCleaner().fit(_frame())
        assert cleaner.empty_columns_ == ["notes"]
        assert "notes" not in cleaner.transform(_frame()).columns

    def test_categories_are_stripped(self):
        cleaned = TabularCleaner().fit(_frame()).transform(_frame())
        assert sorted(cleaned["plan"].unique()) == ["basic", "pro"]

    def test_missing_column_at_transform_is_named(self):
        cleaner = TabularCleaner().fit(_frame())
        with pytest.raises(SchemaError, match=r"lack columns .*\['plan'\]"):
            cleaner.transform(_frame().drop(columns="plan"))

    def test_extra_and_reordered_columns_are_matched_by_name(self):
        cleaner = TabularCleaner().fit(_frame())
        shuffled = _frame()[["plan", "notes", "total", "tenure"]].assign(extra=1)
        pd.testing.assert_frame_equal(
            cleaner.transform(shuffled), cleaner.transform(_frame())
        )


class TestCoerceNumericText:
    def test_integers_with_blanks_become_floats(self):
        coerced = coerce_numeric_text(pd.Series(["1", "", None, " 4 "], dtype="object"))
        assert coerced.dtype == np.float64
        assert coerced.isna().tolist() == [False, True, True, False]


class TestModelPipeline:
    def test_unseen_category_is_scored_not_rejected(self):
        X, y = _frame(), np.array([0, 1, 0, 1, 0, 1])
        cleaner = TabularCleaner().fit(X)
        pipeline = build_model_pipeline(
            cleaner, make_candidate("logistic_regression", 0)
        )
        pipeline.fit(X, y)

        new = X.head(2).assign(plan=["enterprise", "basic"], notes=["now filled", None])
        proba = pipeline.predict_proba(new)
        assert proba.shape == (2, 2)
        assert np.allclose(proba.sum(axis=1), 1.0)
