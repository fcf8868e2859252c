"""Validate: check the raw rows against the spec, normalise the target, and write a
short data-quality report."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from casework.errors import DataError
from casework.usecases.spec import BINARY_METRICS, MULTICLASS_METRICS, UseCaseSpec

__all__ = ["QualityReport", "ValidData", "normalise_labels", "validate"]

logger = logging.getLogger(__name__)

# A stratified split puts every class in train, validation and test: one row each.
MIN_ROWS_PER_CLASS = 3
# Below this, test metrics rest on a handful of rows and mean nothing.
MIN_ROWS = 50


@dataclass
class QualityReport:
    """What the data looked like before cleaning."""

    rows: int
    columns: int
    missing_cells: dict[str, int]
    constant_columns: list[str]
    empty_columns: list[str]
    duplicate_rows: int
    duplicates_removed: int
    rows_without_target: int
    class_balance: dict[str, int]
    label_spellings_merged: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items()}

    def to_markdown(self) -> str:
        lines = [
            f"- rows: {self.rows}, columns: {self.columns}",
            f"- duplicate rows: {self.duplicate_rows} (removed: {self.duplicates_removed})",
            f"- rows without a target value (dropped): {self.rows_without_target}",
            f"- empty columns (dropped): {', '.join(self.empty_columns) or 'none'}",
            f"- constant columns: {', '.join(self.constant_columns) or 'none'}",
            "- class balance: "
            + ", ".join(
                f"{label}: {count}" for label, count in self.class_balance.items()
            ),
        ]
        missing = {column: n for column, n in self.missing_cells.items() if n}
        lines.append(
            "- missing cells: "
            + (", ".join(f"{column}: {n}" for column, n in missing.items()) or "none")
        )
        return "\n".join(lines)


@dataclass
class ValidData:
    """Rows fit for training: features ``X``, encoded target ``y`` and its classes."""

    X: pd.DataFrame
    y: np.ndarray
    classes: list[str]
    positive_label: str | None
    ids: pd.DataFrame
    report: QualityReport
    order: pd.Series | None = None
    false_negative_costs: np.ndarray | None = None

    @property
    def is_binary(self) -> bool:
        return len(self.classes) == 2


@task(name="validate", cache_policy=NO_CACHE)
def validate(frame: pd.DataFrame, spec: UseCaseSpec) -> ValidData:
    """Check the frame against the spec and split it into features and target.

    Raises:
        DataError: a column the spec names is absent, or the target has fewer than
            two classes, or a class has fewer than ``MIN_ROWS_PER_CLASS`` rows, or the
            positive label never occurs, or the cost column holds no usable costs.
    """
    _require_columns(frame, spec)
    frame = _blank_to_missing(frame)
    duplicate_rows = int(frame.duplicated().sum())
    if spec.deduplicate and duplicate_rows:
        frame = frame.drop_duplicates().reset_index(drop=True)
        logger.info("Removed %d exact duplicate rows", duplicate_rows)

    target = spec.target.column
    has_target = frame[target].notna()
    if not has_target.all():
        logger.warning(
            "Dropping %d rows with no value in %r", int((~has_target).sum()), target
        )
        frame = frame[has_target].reset_index(drop=True)

    if len(frame) < MIN_ROWS:
        raise DataError(
            f"{spec.name}: {len(frame)} rows with a value in {target!r}; at least "
            f"{MIN_ROWS} are needed to train, validate and test a model"
        )
    labels, merged = normalise_labels(frame[target], spec.target.positive)
    classes, positive = _classes(labels, spec)
    report = _report(
        frame, spec, duplicate_rows, int((~has_target).sum()), labels, merged
    )
    y = _encode(labels, classes, positive)

    features = frame.drop(columns=[c for c in spec.excluded_columns() if c in frame])
    if features.shape[1] == 0:
        raise DataError(
            f"{spec.name}: no feature columns left: every column of the data is the "
            "target or listed in id_columns, pii_columns or drop_columns"
        )
    ids = frame[[c for c in spec.id_columns if c in frame]]
    order = frame[spec.split.column] if spec.split.strategy == "time" else None
    costs = _false_negative_costs(frame, spec)
    logger.info(
        "Validated %d rows, %d feature columns, classes %s",
        len(frame),
        features.shape[1],
        report.class_balance,
    )
    return ValidData(features, y, classes, positive, ids, report, order, costs)


def normalise_labels(
    values: pd.Series, positive: str | int | None = None
) -> tuple[pd.Series, dict[str, list[str]]]:
    """Labels as text, with spellings that differ only by case or spaces merged.

    ``Yes``, `` yes`` and ``YES`` become one class, spelled as the spec's positive
    label where it matches, else as the most frequent spelling. Whole-number floats
    (``1.0``) are written as integers (``1``).

    Returns:
        The normalised labels, and for each merged class the spellings that met in it.
    """
    text = values.map(_label_text)
    keys = text.str.strip().str.casefold()
    preferred = (
        {str(positive).strip().casefold(): str(positive).strip()} if positive else {}
    )

    canonical: dict[str, str] = {}
    merged: dict[str, list[str]] = {}
    for key, group in text.groupby(keys, sort=False):
        spellings = group.value_counts()
        canonical[key] = preferred.get(key, str(spellings.index[0]).strip())
        if len(spellings) > 1:
            merged[canonical[key]] = sorted(spellings.index.astype(str))
    if merged:
        logger.warning(
            "Merged target labels that differ only by case or spaces: %s", merged
        )
    return keys.map(canonical), merged


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _require_columns(frame: pd.DataFrame, spec: UseCaseSpec) -> None:
    target = spec.target.column
    if target not in frame.columns:
        raise DataError(
            f"{spec.name}: target column {target!r} not found; "
            f"the data has columns {list(frame.columns)}"
        )
    named = {"id_columns": spec.id_columns, "pii_columns": spec.pii_columns}
    if spec.split.strategy == "time":
        named["split.column"] = [spec.split.column]
    if spec.threshold.strategy == "cost" and spec.threshold.false_negative_cost_column:
        named["threshold.false_negative_cost_column"] = [
            spec.threshold.false_negative_cost_column
        ]
    for field_name, columns in named.items():
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"{spec.name}: {field_name} names {missing}, which the data does not have; "
                f"columns are {list(frame.columns)}"
            )


def _blank_to_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells of text that hold only spaces become missing values."""
    frame = frame.copy()
    for column in frame.columns:
        if not _is_text(frame[column]):
            continue
        stripped = frame[column].astype("string").str.strip()
        frame[column] = frame[column].where(stripped.ne("").fillna(True), np.nan)
    return frame


def _classes(labels: pd.Series, spec: UseCaseSpec) -> tuple[list[str], str | None]:
    counts = labels.value_counts()
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else "none"
        raise DataError(
            f"{spec.name}: target column {spec.target.column!r} has a single class "
            f"({only!r}); a classifier needs at least two"
        )
    classes = sorted(counts.index.astype(str))
    if len(classes) > 2 and spec.target.positive is not None:
        raise DataError(
            f"{spec.name}: target column {spec.target.column!r} has {len(classes)} labels "
            f"{classes}, but the spec names a positive label ({spec.target.positive!r}), "
            "so a binary target with 2 labels was expected; fix the stray labels or "
            "drop 'positive' for a multi-class target"
        )
    positive = _positive_label(classes, spec)
    _require_metric_fits(classes, spec)
    _require_splittable(counts, spec)
    if positive is None:
        return classes, None
    negative = next(label for label in classes if label != positive)
    return [negative, positive], positive


def _positive_label(classes: list[str], spec: UseCaseSpec) -> str | None:
    """The positive class of a binary target; None for a multi-class one."""
    if len(classes) > 2:
        return None
    if spec.target.positive is None:
        return classes[1]
    positive = str(spec.target.positive).strip()
    if positive not in classes:
        raise DataError(
            f"{spec.name}: positive label {positive!r} of target {spec.target.column!r} "
            f"does not occur; the labels are {classes}"
        )
    return positive


def _require_metric_fits(classes: list[str], spec: UseCaseSpec) -> None:
    kind, fitting = (
        ("binary", BINARY_METRICS)
        if len(classes) == 2
        else ("multi-class", MULTICLASS_METRICS)
    )
    if spec.metric.primary not in fitting:
        raise DataError(
            f"{spec.name}: metric.primary {spec.metric.primary!r} does not fit the "
            f"{kind} target {spec.target.column!r} (labels {classes}); use one of "
            f"{', '.join(fitting)}"
        )


def _require_splittable(counts: pd.Series, spec: UseCaseSpec) -> None:
    rare = counts[counts < MIN_ROWS_PER_CLASS]
    if rare.empty:
        return
    listed = ", ".join(
        f"{label!r} ({n} row{'s' * (n > 1)})" for label, n in rare.items()
    )
    raise DataError(
        f"{spec.name}: target column {spec.target.column!r} has classes too rare to "
        f"split: {listed}; every class needs at least {MIN_ROWS_PER_CLASS} rows (one "
        "each for train, validation and test). Merge or drop them in a prepare hook"
    )


def _false_negative_costs(frame: pd.DataFrame, spec: UseCaseSpec) -> np.ndarray | None:
    """The per-row cost of a missed positive, from the spec's cost column, if any."""
    column = spec.threshold.false_negative_cost_column
    if spec.threshold.strategy != "cost" or not column:
        return None
    costs = pd.to_numeric(frame[column], errors="coerce")
    bad = frame[column][costs.isna() | (costs < 0)]
    if not bad.empty:
        raise DataError(
            f"{spec.name}: cost column {column!r} (threshold.false_negative_cost_column) "
            f"has {len(bad)} values that are not non-negative numbers, e.g. "
            f"{bad.iloc[0]!r}; every row needs the cost of missing it"
        )
    return costs.to_numpy(dtype=np.float64)


def _encode(labels: pd.Series, classes: list[str], positive: str | None) -> np.ndarray:
    index = {label: position for position, label in enumerate(classes)}
    return labels.map(index).to_numpy(dtype=np.int64)


def _report(
    frame: pd.DataFrame,
    spec: UseCaseSpec,
    duplicate_rows: int,
    rows_without_target: int,
    labels: pd.Series,
    merged: dict[str, list[str]],
) -> QualityReport:
    missing = frame.isna().sum()
    nunique = frame.nunique(dropna=True)
    return QualityReport(
        rows=len(frame),
        columns=frame.shape[1],
        missing_cells={str(c): int(n) for c, n in missing.items()},
        constant_columns=[str(c) for c, n in nunique.items() if n == 1],
        empty_columns=[str(c) for c, n in missing.items() if n == len(frame)],
        duplicate_rows=duplicate_rows,
        duplicates_removed=duplicate_rows if spec.deduplicate else 0,
        rows_without_target=rows_without_target,
        class_balance={
            str(k): int(v) for k, v in labels.value_counts().sort_index().items()
        },
        label_spellings_merged=merged,
    )


def _is_text(column: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)
