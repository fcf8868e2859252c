"""Clean and normalise: a fitted scikit-learn transformer that turns raw rows into
model features, and so becomes the first steps of every registered model.

``TabularCleaner`` decides each column's kind from the training rows: text that is
all numbers becomes numeric, cells of blank text become missing, columns with no
value at all are dropped. The encoder then imputes, scales and one-hot encodes,
ignoring categories it never saw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from casework.errors import SchemaError

__all__ = ["TabularCleaner", "build_model_pipeline", "coerce_numeric_text"]

logger = logging.getLogger(__name__)

MAX_CATEGORIES = 30


class TabularCleaner(TransformerMixin, BaseEstimator):
    """Give each raw column one kind, numeric or categorical, as learned in ``fit``.

    Args:
        numeric_text_share: the share of non-blank cells of a text column that must
            parse as numbers for the column to count as numeric, default 0.98.
    """

    def __init__(self, numeric_text_share: float = 0.98):
        self.numeric_text_share = numeric_text_share

    def fit(self, X: pd.DataFrame, y: Any = None) -> TabularCleaner:
        frame = _as_frame(X)
        self.input_columns_ = [str(c) for c in frame.columns]
        self.empty_columns_ = [c for c in self.input_columns_ if _is_empty(frame[c])]
        if self.empty_columns_:
            # Debug only: the pipeline refits a cleaner for every candidate, fold and
            # refit; the training flow warns once, from its first fit.
            logger.debug("Dropping columns with no values: %s", self.empty_columns_)

        kept = [c for c in self.input_columns_ if c not in self.empty_columns_]
        self.numeric_columns_ = [c for c in kept if self._is_numeric(frame[c])]
        self.categorical_columns_ = [c for c in kept if c not in self.numeric_columns_]
        self.numeric_text_columns_ = [
            c
            for c in self.numeric_columns_
            if not pd.api.types.is_numeric_dtype(frame[c])
        ]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        frame = _as_frame(X)
        missing = [
            c
            for c in self.numeric_columns_ + self.categorical_columns_
            if c not in frame
        ]
        if missing:
            raise SchemaError(
                f"rows to score lack columns the model was trained on: {missing}"
            )

        numeric = {c: coerce_numeric_text(frame[c]) for c in self.numeric_columns_}
        categorical = {
            c: _as_category_text(frame[c]) for c in self.categorical_columns_
        }
        return pd.DataFrame({**numeric, **categorical}, index=frame.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(
            self.numeric_columns_ + self.categorical_columns_, dtype=object
        )

    def _is_numeric(self, column: pd.Series) -> bool:
        if pd.api.types.is_bool_dtype(column):
            return False
        if pd.api.types.is_numeric_dtype(column):
            return True
        text = column.dropna().astype(str).str.strip()
        present = text[text != ""]
        if present.empty:
            return False
        parsed = pd.to_numeric(present, errors="coerce")
        return bool(parsed.notna().mean() >= self.numeric_text_share)


def coerce_numeric_text(column: pd.Series) -> pd.Series:
    """Numbers as float64, parsing text; blank or unparsable cells, and dates, become
    NaN."""
    if pd.api.types.is_datetime64_any_dtype(
        column
    ) or pd.api.types.is_timedelta64_dtype(column):
        return pd.Series(np.nan, index=column.index, dtype="float64")
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype("float64")
    text = column.astype("object").where(column.notna(), None)
    stripped = text.map(lambda v: v.strip() if isinstance(v, str) else v)
    return pd.to_numeric(stripped, errors="coerce").astype("float64")


def build_model_pipeline(
    cleaner: TabularCleaner,
    estimator: BaseEstimator,
    features_hook: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> Pipeline:
    """One pipeline from raw rows to predictions: hook, clean, encode, estimator.

    ``cleaner`` must be fitted: its column kinds shape the encoder.
    """
    steps: list[tuple[str, Any]] = []
    if features_hook is not None:
        steps.append(("features", FunctionTransformer(features_hook)))
    steps += [
        ("clean", TabularCleaner(cleaner.numeric_text_share)),
        ("encode", _encoder(cleaner)),
        ("model", estimator),
    ]
    return Pipeline(steps)


def _encoder(cleaner: TabularCleaner) -> ColumnTransformer:
    numeric = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
    )
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="(missing)")),
            (
                "one_hot",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    max_categories=MAX_CATEGORIES,
                    sparse_output=False,
                ),
            ),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, list(cleaner.numeric_columns_)),
            ("categorical", categorical, list(cleaner.categorical_columns_)),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def _is_empty(column: pd.Series) -> bool:
    """True when no cell holds a value; blank text counts as no value."""
    if pd.api.types.is_numeric_dtype(column):
        return bool(column.isna().all())
    return bool(column.dropna().astype(str).str.strip().eq("").all())


def _as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    raise TypeError(f"expected a pandas DataFrame of raw rows, got {type(X).__name__}")


def _as_category_text(column: pd.Series) -> pd.Series:
    """Categories as stripped text in an object column; missing stays NaN."""
    present = column.notna()
    text = pd.Series(np.nan, index=column.index, dtype="object")
    text[present] = column[present].astype(str).str.strip().to_numpy(dtype=object)
    return text.where(text != "", np.nan)
