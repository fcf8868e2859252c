"""Split: hold out test rows (never used for selection) and validation rows (used to
pick the winner and its threshold), stratified, random or by time."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sklearn.model_selection import train_test_split

from casework.errors import DataError
from casework.tasks.validate import ValidData
from casework.usecases.spec import SplitSpec

__all__ = ["Split", "split"]

logger = logging.getLogger(__name__)


@dataclass
class Split:
    """Row positions of the three parts; ``train`` and ``validation`` together make the
    rows the final model is fitted on."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    strategy: str

    @property
    def train_and_validation(self) -> np.ndarray:
        return np.concatenate([self.train, self.validation])


@task(name="split", cache_policy=NO_CACHE)
def split(data: ValidData, split_spec: SplitSpec) -> Split:
    """Divide the rows of ``data`` into train, validation and test parts; a time
    split trains on the earliest rows and tests on the latest."""
    positions = np.arange(len(data.y))
    if split_spec.strategy == "time":
        parts = _by_time(positions, data.order, split_spec)
    else:
        stratify = split_spec.strategy == "stratified"
        rest, test = _random(
            positions, data.y, split_spec.test_size, split_spec, stratify
        )
        train, validation = _random(
            rest, data.y[rest], split_spec.validation_size, split_spec, stratify
        )
        parts = (train, validation, test)

    _require_two_classes(data, parts, split_spec)
    result = Split(*parts, strategy=split_spec.strategy)
    logger.info(
        "Split %s: %d train, %d validation, %d test rows",
        split_spec.strategy,
        len(result.train),
        len(result.validation),
        len(result.test),
    )
    return result


def _require_two_classes(
    data: ValidData, parts: tuple[np.ndarray, ...], spec: SplitSpec
) -> None:
    """Refuse a part whose rows all hold one class: no metric or threshold can be
    measured on it, and a model scored NaN would still be registered."""
    for name, rows in zip(("train", "validation", "test"), parts, strict=True):
        present = np.unique(data.y[rows])
        if len(present) == 1:
            how = (
                f"by time on {spec.column!r}"
                if spec.strategy == "time"
                else spec.strategy
            )
            raise DataError(
                f"split ({how}): all {len(rows)} {name} rows are of class "
                f"{data.classes[present[0]]!r}; every part needs two classes at least: "
                "use more rows, a larger test_size or validation_size, or another split"
            )


def _random(
    positions: np.ndarray, y: np.ndarray, size: float, spec: SplitSpec, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    labels, counts = np.unique(y, return_counts=True)
    if stratify and counts.min() < 2:
        rare = labels[counts < 2].tolist()
        # A class of one row cannot be in both parts; fall back to a random split
        # rather than fail, and say so.
        logger.warning(
            "Class(es) %s have fewer than 2 rows: stratified split impossible, "
            "falling back to a random split",
            rare,
        )
        stratify = False
    try:
        kept, held_out = train_test_split(
            positions,
            test_size=size,
            random_state=spec.seed,
            stratify=y if stratify else None,
        )
    except ValueError as exc:
        raise DataError(f"cannot split {len(positions)} rows: {exc}") from None
    return np.sort(kept), np.sort(held_out)


def _by_time(
    positions: np.ndarray, order: pd.Series | None, spec: SplitSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if order is None:
        raise DataError(f"time split needs the column {spec.column!r}")
    when = _time_values(order, spec.column)
    ranked = positions[np.argsort(when, kind="stable")]
    n_test = max(1, round(len(ranked) * spec.test_size))
    rest, test = ranked[:-n_test], ranked[-n_test:]
    n_validation = max(1, round(len(rest) * spec.validation_size))
    train, validation = rest[:-n_validation], rest[-n_validation:]
    return np.sort(train), np.sort(validation), np.sort(test)


def _time_values(order: pd.Series, column: str | None) -> np.ndarray:
    """Numbers or datetimes to sort by; a missing or unparsable value is an error."""
    if order.isna().any():
        raise DataError(
            f"time split column {column!r} has {int(order.isna().sum())} missing values; "
            "every row needs a time to be ordered by"
        )
    if pd.api.types.is_numeric_dtype(order):
        return order.to_numpy(dtype=np.float64)
    numbers = pd.to_numeric(order, errors="coerce")
    if numbers.notna().all():  # numbers stored as text
        return numbers.to_numpy(dtype=np.float64)
    with warnings.catch_warnings():
        # pandas warns that it guesses the format per value; bad values are reported
        # below in one line.
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(order, errors="coerce", utc=True)
    bad = order[parsed.isna()]
    if not bad.empty and numbers.notna().any() and parsed.notna().any():
        raise DataError(
            f"time split column {column!r} mixes numbers ({int(numbers.notna().sum())}"
            f" values, e.g. {order[numbers.notna()].iloc[0]!r}) and dates; use one kind"
        )
    if not bad.empty:
        raise DataError(
            f"time split column {column!r}: {len(bad)} values are neither numbers nor "
            f"dates, e.g. {bad.iloc[0]!r}"
        )
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
