"""Ingest: read a use case's raw rows from its source, and fingerprint them."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from casework.errors import DataError, first_line
from casework.tasks.frames import (
    UNREADABLE_CSV,
    require_file,
    require_plain_rows,
    require_unique_names,
    unreadable_csv,
)
from casework.usecases.hooks import call_for_frame, load_callable
from casework.usecases.spec import CsvSource, ParquetSource, PythonSource, UseCaseSpec

__all__ = ["RawData", "fingerprint", "ingest", "read_source"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawData:
    """The rows of a use case as read, with where they came from."""

    frame: pd.DataFrame
    fingerprint: str
    source: str


@task(name="ingest", cache_policy=NO_CACHE)
def ingest(spec: UseCaseSpec) -> RawData:
    """Read the use case's source, apply its ``prepare`` hook, and fingerprint it."""
    frame, where = read_source(spec)
    if spec.hooks.prepare:
        frame = _prepare(frame, spec)

    data = RawData(frame=frame, fingerprint=fingerprint(frame), source=where)
    logger.info(
        "Read %d rows x %d columns from %s (fingerprint %s)",
        len(frame),
        frame.shape[1],
        where,
        data.fingerprint,
    )
    return data


def read_source(spec: UseCaseSpec) -> tuple[pd.DataFrame, str]:
    """The raw frame of a spec's source, and a description of it that holds no secret."""
    source = spec.source
    if isinstance(source, CsvSource):
        path = spec.resolve_path(source.path)
        return _read_csv(path, source.separator), str(path)
    if isinstance(source, ParquetSource):
        path = spec.resolve_path(source.path)
        return _read_parquet(path), str(path)
    if isinstance(source, PythonSource):
        return _read_python(source.callable, spec), f"python:{source.callable}"

    from casework.tasks.sql import read_sql_source

    return read_sql_source(source)


def fingerprint(frame: pd.DataFrame) -> str:
    """A short content hash of the rows and column names, the same for equal data."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    hashed = pd.util.hash_pandas_object(frame, index=False)
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _read_csv(path: Path, separator: str) -> pd.DataFrame:
    require_file(path, "source")
    try:
        # utf-8-sig drops a byte-order mark before the first header, if there is one.
        frame = pd.read_csv(path, sep=separator, encoding="utf-8-sig", low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path}: the file is empty; expected a header row and data rows"
        ) from None
    except UNREADABLE_CSV as exc:
        raise unreadable_csv(path, exc) from None
    require_plain_rows(frame, path, frame.shape[1])
    _require_unique_header(path, separator)
    return _checked(frame, path)


def _require_unique_header(path: Path, separator: str) -> None:
    """pandas renames a repeated column name (``gender``, ``gender.1``): refuse it."""
    header = pd.read_csv(
        path, sep=separator, encoding="utf-8-sig", header=None, nrows=1
    )
    require_unique_names([str(name) for name in header.iloc[0]], path)


def _read_parquet(path: Path) -> pd.DataFrame:
    require_file(path, "source")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DataError(
            f"{path}: not a readable Parquet file: {first_line(exc)}"
        ) from None
    return _checked(frame, path)


def _read_python(reference: str, spec: UseCaseSpec) -> pd.DataFrame:
    function = load_callable(reference, spec.base_dir)
    frame = call_for_frame(function, who=f"source python:{reference}")
    return _checked(frame, f"python:{reference}")


def _prepare(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """The raw rows through the ``prepare`` hook, which must give back a frame."""
    hook = load_callable(spec.hooks.prepare, spec.base_dir)
    return call_for_frame(
        hook, frame, who=f"hook {spec.hooks.prepare!r}", on=" on the raw rows"
    )


def _checked(frame: pd.DataFrame, where: object) -> pd.DataFrame:
    if frame.empty:
        raise DataError(f"{where}: no data rows; expected a header row and data rows")
    frame.columns = [str(column).strip() for column in frame.columns]
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise DataError(f"{where}: column names appear twice: {duplicated}")
    return frame
