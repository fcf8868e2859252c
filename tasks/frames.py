"""Checks of the rows read from CSV and Parquet files, shared by training's ingest
and scoring's reader.

NOTE: this module must not import Prefect: the CLI checks scoring's input and output
before it launches the local Prefect API, and Prefect reads its settings (the API
URL among them) once, when first imported.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from casework.errors import DataError

__all__ = ["first_non_utf8", "require_plain_rows", "require_unique_names"]

logger = logging.getLogger(__name__)


def require_plain_rows(
    frame: pd.DataFrame, where: object, n_fields: int, first_row: int = 0
) -> None:
    """Refuse rows longer than the header: pandas turns their extra leading fields
    into an index instead of failing. ``first_row`` is the number of the frame's
    first row in the file (a chunk's offset); leading fields 1, 2, 3 make a range
    index too, but one that starts elsewhere."""
    index = frame.index
    numbered = isinstance(index, pd.RangeIndex) and index.step == 1
    if not numbered or (len(index) and index.start != first_row):
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


def first_non_utf8(path: Path) -> str:
    """Where a file stops being UTF-8: pandas' error counts from its read buffer."""
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"line {line} is not UTF-8 text (byte {data[exc.start]:#04x})"
    return "not UTF-8 text"
