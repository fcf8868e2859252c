"""Hooks of the ``quality`` use case.

``fault_type_from_one_hot`` folds the seven one-hot fault columns of the UCI data into
one label (training only); ``log_scale_counts`` log-scales the heavily skewed count and
area columns and is the first step of the registered model.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from casework.errors import DataError

__all__ = [
    "FAULT_COLUMNS",
    "SKEWED_COLUMNS",
    "fault_type_from_one_hot",
    "log_scale_counts",
]

logger = logging.getLogger(__name__)

TARGET = "fault_type"

# UCI spells the scratch class "K_Scatch"; kept as is so labels match the source.
FAULT_COLUMNS = (
    "Pastry",
    "Z_Scratch",
    "K_Scatch",
    "Stains",
    "Dirtiness",
    "Bumps",
    "Other_Faults",
)

# Pixel counts, perimeters and summed luminosity span four orders of magnitude.
SKEWED_COLUMNS = (
    "Pixels_Areas",
    "X_Perimeter",
    "Y_Perimeter",
    "Sum_of_Luminosity",
)


def fault_type_from_one_hot(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the seven fault columns replaced by one ``fault_type`` label.

    Raises:
        DataError: a fault column is missing, or a row does not flag exactly one fault.
    """
    missing = [column for column in FAULT_COLUMNS if column not in frame]
    if missing:
        raise DataError(
            f"quality: fault columns {missing} not found; the prepare hook expects all "
            f"of {list(FAULT_COLUMNS)}"
        )

    flags = frame[list(FAULT_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    flagged = flags.eq(1).sum(axis=1)
    bad = flagged.index[flagged != 1]
    if len(bad):
        raise DataError(
            f"quality: {len(bad)} rows do not flag exactly one of {list(FAULT_COLUMNS)} "
            f"with 1 (first at row {bad[0]}); every plate needs one fault type"
        )

    labels = flags.eq(1).idxmax(axis=1)
    prepared = frame.drop(columns=list(FAULT_COLUMNS))
    prepared[TARGET] = labels.to_numpy()
    return prepared


def log_scale_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the skewed count columns replaced by ``log1p`` of their value.

    Columns that are absent are left to the cleaning step to report; negative values,
    which a count cannot have, become missing rather than an error.
    """
    scaled = frame.copy()
    for column in SKEWED_COLUMNS:
        if column not in scaled:
            continue
        values = pd.to_numeric(scaled[column], errors="coerce").astype("float64")
        scaled[column] = np.log1p(values.where(values >= 0))
    return scaled
