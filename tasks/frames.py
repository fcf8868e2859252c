"""Checks of the rows read from CSV and Parquet files, shared by training's ingest
and scoring's reader.

NOTE: this module must not import Prefect: the CLI checks scoring's input and output
before it launches the local Prefect API, and Prefect reads its settings (the API
URL among them) once, when first imported.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import pandas as pd

from casework.errors import DataError, first_line, utf8_break

__all__ = [
    "UNREADABLE_CSV",
    "require_file",
    "require_plain_rows",
    "require_unique_names",
    "unreadable_csv",
]

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


# What reading a CSV file raises for the file's own fault: pandas' parser, bytes
# that are not UTF-8, and gzip for a .csv.gz that is not one or is cut short.
UNREADABLE_CSV = (
    pd.errors.ParserError,
    UnicodeDecodeError,
    EOFError,
    OSError,
    zlib.error,
)


def unreadable_csv(path: Path, exc: BaseException) -> DataError:
    """The error for a CSV file that could not be read; bytes that are not UTF-8
    are found by line, as pandas' own error counts them from its read buffer."""
    found = (
        utf8_break(path.read_bytes()) if isinstance(exc, UnicodeDecodeError) else None
    )
    if found is None:
        return DataError(f"{path}: not a readable CSV file: {first_line(exc)}")
    line, byte = found
    return DataError(
        f"{path}: line {line} is not UTF-8 text (byte {byte:#04x}); save it as UTF-8"
    )


def require_file(path: Path | None, what: str) -> Path:
    """``path``, once it is known to be a file to read; ``what`` names it in the
    error (``source``, ``input``)."""
    if path is not None and path.is_dir():
        raise DataError(f"{path}: {what} is a folder; expected a .csv or .parquet file")
    if path is None or not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    return path
