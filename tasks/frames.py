"""Checks of the rows read from CSV and Parquet files, shared by training's ingest
and scoring's reader.

NOTE: this module must not import Prefect: the CLI checks scoring's input and output
before it launches the local Prefect API, and Prefect reads its settings (the API
URL among them) once, when first imported.
"""

from __future__ import annotations

import logging

import pandas as pd

from casework.errors import DataError

__all__ = ["require_plain_rows", "require_unique_names"]

logger = logging.getLogger(__name__)


def require_plain_rows(frame: pd.DataFrame, where: object, n_fields: int) -> None:
    """Refuse rows longer than the header: pandas turns their extra leading fields
    into an index instead of failing."""
    if not isinstance(frame.index, pd.RangeIndex):
        raise DataError(
            f"{where}: rows have more fields than the {n_fields} of the header; "
            "check the separator and the quoting"
        )


def require_unique_names(names: list[str], where: object) -> None:
    """Refuse column names that appear twice (after stripping spaces)."""
    stripped = [name.strip() for name in names]
    repeated = sorted({name for name in stripped if stripped.count(name) > 1})
    if repeated:
        raise DataError(f"{where}: column names appear twice in the header: {repeated}")
