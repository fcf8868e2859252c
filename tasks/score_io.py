"""Where rows to score come from and where scores go: CSV, Parquet or SQL, in chunks.

An endpoint is written on the command line as a path (``rows.csv``,
``rows.parquet``) or as a SQLAlchemy URL with ``--input-table``/``--input-query`` (or
``--output-table``). Files are written atomically: chunks go to a temporary file in
the target's folder, which replaces the target only once every chunk is written, so
a failed run never leaves a half-written file in place of a good one. SQL tables
are written in one transaction (see :func:`casework.tasks.sql.write_table`).
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd

from casework.errors import DataError, first_line
from casework.tasks.frames import (
    UNREADABLE_CSV,
    require_file,
    require_plain_rows,
    require_unique_names,
    unreadable_csv,
)
from casework.tasks.redact import redact_url
from casework.usecases.spec import (
    CsvSource,
    ParquetSource,
    SqlSink,
    SqlSource,
    UseCaseSpec,
)

__all__ = [
    "Endpoint",
    "check_output_file",
    "input_endpoint",
    "output_endpoint",
    "read_chunks",
    "require_apart",
    "write_chunks",
]

logger = logging.getLogger(__name__)

EndpointKind = Literal["csv", "parquet", "sql"]

_FILE_KINDS: dict[str, EndpointKind] = {
    ".csv": "csv",
    ".gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class Endpoint:
    """A file or a SQL table/query that rows are read from or scores written to."""

    kind: EndpointKind
    path: Path | None = None
    url: str | None = None
    table: str | None = None
    query: str | None = None
    schema: str | None = None
    separator: str = ","
    mode: Literal["append", "replace"] = "append"

    def describe(self) -> str:
        """Where the endpoint points, with any password redacted."""
        from casework.tasks.sql import describe_sql

        if self.kind == "sql":
            return describe_sql(self.url or "", self.table, self.query, self.schema)
        return str(self.path)


def input_endpoint(
    spec: UseCaseSpec, location: str = "", table: str = "", query: str = ""
) -> Endpoint:
    """The endpoint rows to score are read from: the arguments, else the spec's
    ``scoring.input``.

    Raises:
        DataError: nothing names an input, or the arguments do not fit together.
    """
    if location:
        return _endpoint(location, table, query, "input")
    default = spec.scoring.input
    if default is None:
        raise DataError(
            f"{spec.name}: no input to score; give --input rows.csv (or .parquet, or a "
            "SQL URL with --input-table) or set scoring.input in the spec"
        )
    if isinstance(default, SqlSource):
        return Endpoint(
            "sql",
            url=default.url,
            table=default.table,
            query=default.query,
            schema=default.schema_name,
        )
    if isinstance(default, CsvSource | ParquetSource):
        separator = default.separator if isinstance(default, CsvSource) else ","
        return Endpoint(
            default.kind, path=spec.resolve_path(default.path), separator=separator
        )
    raise DataError(
        f"{spec.name}: scoring.input of kind {default.kind!r} cannot be scored; "
        "expected csv, parquet or sql"
    )


def output_endpoint(
    spec: UseCaseSpec,
    location: str = "",
    table: str = "",
    mode: Literal["append", "replace"] | None = None,
) -> Endpoint:
    """The endpoint scores are written to: the arguments, else ``scoring.output``.

    ``mode`` applies to SQL tables (files are always replaced); None takes the
    spec's ``scoring.output.mode``, else ``append``.

    Raises:
        DataError: nothing names an output, or the arguments do not fit together.
    """
    if location:
        return replace(_endpoint(location, table, "", "output"), mode=mode or "append")
    default = spec.scoring.output
    if default is None:
        raise DataError(
            f"{spec.name}: no output for the scores; give --output scores.csv (or "
            ".parquet, or a SQL URL with --output-table) or set scoring.output in the spec"
        )
    if isinstance(default, SqlSink):
        return Endpoint(
            "sql",
            url=default.url,
            table=default.table,
            schema=default.schema_name,
            mode=mode or default.mode,
        )
    separator = default.separator if isinstance(default, CsvSource) else ","
    return Endpoint(
        default.kind, path=spec.resolve_path(default.path), separator=separator
    )


def read_chunks(
    endpoint: Endpoint,
    columns: list[str],
    text_columns: list[str],
    chunk_rows: int,
) -> Iterator[pd.DataFrame]:
    """Frames of at most ``chunk_rows`` rows holding ``columns`` (others are not read
    where the format allows); ``text_columns`` are read as text, so codes such as
    ``007`` keep their leading zeros.

    A missing column fails before any row is read, when the format tells the
    columns up front (CSV and Parquet headers, SQL tables).

    Raises:
        DataError: the endpoint cannot be read.
        SchemaError: raised by the caller's check on the first chunk otherwise.
    """
    if endpoint.kind == "csv":
        return _read_csv_chunks(endpoint, columns, text_columns, chunk_rows)
    if endpoint.kind == "parquet":
        return _read_parquet_chunks(endpoint, columns, chunk_rows)
    return _read_sql_chunks(endpoint, columns, chunk_rows)


def write_chunks(frames: Iterable[pd.DataFrame], endpoint: Endpoint) -> int:
    """Write every frame to ``endpoint`` and return the number of rows written.

    Files are always replaced, atomically; SQL tables are written in the endpoint's
    ``mode``, in one transaction.
    """
    if endpoint.kind == "sql":
        from casework.tasks.sql import write_table

        return write_table(
            frames,
            endpoint.url or "",
            endpoint.table or "",
            endpoint.schema,
            endpoint.mode,
        )
    assert endpoint.path is not None
    with _atomic_file(endpoint.path) as temporary:
        if endpoint.kind == "csv":
            gzipped = endpoint.path.suffix.lower() == ".gz"
            written = _write_csv(frames, temporary, endpoint.separator, gzipped)
        else:
            written = _write_parquet(frames, temporary)
    logger.info("Wrote %d rows to %s", written, endpoint.path)
    return written


def check_output_file(
    path: Path, what: str = "output", example: str = "scores.csv"
) -> None:
    """Refuse an output path that cannot become a file: a folder, or a file in a
    folder that does not exist. Folders are not created: a mistyped one would hide
    the output where nobody looks for it.

    Args:
        what: how the message names the path, e.g. an option.
        example: a file name to suggest inside a folder given instead of a file.

    Raises:
        DataError: naming the path or the folder, and what to do.
    """
    if path.is_dir():
        raise DataError(
            f"{what} {path} is a folder; give a file in it instead, such as "
            f"{path / example}"
        )
    if not path.parent.is_dir():
        raise DataError(
            f"{what} {path}: the folder {path.parent} does not exist; create it "
            "first, or correct the path"
        )


def _endpoint(location: str, table: str, query: str, role: str) -> Endpoint:
    if _is_url(location):
        if bool(table) == bool(query):
            wanted = (
                "exactly one of --input-table or --input-query"
                if role == "input"
                else "--output-table with it"
            )
            raise DataError(
                f"{role} {redact_url(location)!r} is a SQL URL; give {wanted}"
            )
        schema, name = _split_schema(table) if table else (None, None)
        return Endpoint(
            "sql", url=location, table=name, query=query or None, schema=schema
        )
    if table or query:
        raise DataError(
            f"{role} {location!r} is a file; --{role}-table and --{role}-query need a "
            "SQL URL such as postgresql+psycopg://user:${PGPASSWORD}@host/db"
        )
    path = Path(location).expanduser()
    suffix = path.suffix.lower()
    if suffix not in _FILE_KINDS and path.is_dir():
        raise DataError(
            f"{role} {location!r} is a folder; expected a .csv, .csv.gz or .parquet "
            "file in it, or a SQL URL"
        )
    if suffix not in _FILE_KINDS:
        raise DataError(
            f"{role} {location!r}: unknown file type {suffix or '(none)'!r}; expected "
            ".csv, .csv.gz or .parquet, or a SQL URL"
        )
    return Endpoint(_FILE_KINDS[suffix], path=path.resolve())


def _is_url(location: str) -> bool:
    """A SQLAlchemy URL, or a ``${VAR}`` placeholder whose variable holds one."""
    if location.startswith("${"):
        return True
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.lower() != "file" and "/" not in scheme


def _split_schema(table: str) -> tuple[str | None, str]:
    """``schema.table`` into its parts; a name without a dot has no schema."""
    schema, dot, name = table.partition(".")
    return (schema, name) if dot and schema and name else (None, table)


def _read_csv_chunks(
    endpoint: Endpoint, columns: list[str], text_columns: list[str], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    path = require_file(endpoint.path, "input")
    header = _csv_header(path, endpoint.separator)
    _require(header, columns, str(path))
    # Every column is read, as training reads them: with ``usecols`` pandas drops a
    # row's extra fields silently. Columns the model does not use stay text, unparsed.
    wanted = set(columns)
    numeric = wanted - set(text_columns)
    options: dict[str, Any] = {
        "sep": endpoint.separator,
        "encoding": "utf-8-sig",
        "dtype": {raw: "str" for raw in header if raw.strip() not in numeric},
        "chunksize": chunk_rows,
    }
    kept = [raw for raw in header if raw.strip() in wanted]
    try:
        with pd.read_csv(path, **options) as reader:
            first_row = 0
            for chunk in reader:
                require_plain_rows(chunk, path, len(header), first_row)
                first_row += len(chunk)
                chunk = chunk[kept]
                chunk.columns = [str(c).strip() for c in chunk.columns]
                yield chunk
    except UNREADABLE_CSV as exc:
        raise unreadable_csv(path, exc) from None


def _csv_header(path: Path, separator: str) -> list[str]:
    try:
        frame = pd.read_csv(path, sep=separator, encoding="utf-8-sig", nrows=0)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header row") from None
    except UNREADABLE_CSV as exc:
        raise unreadable_csv(path, exc) from None
    first_row = pd.read_csv(
        path, sep=separator, encoding="utf-8-sig", header=None, nrows=1
    )
    require_unique_names([str(name) for name in first_row.iloc[0]], path)
    return [str(c) for c in frame.columns]


def _read_parquet_chunks(
    endpoint: Endpoint, columns: list[str], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    path = require_file(endpoint.path, "input")
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DataError(
            f"{path}: not a readable Parquet file: {first_line(exc)}"
        ) from None
    require_unique_names(list(parquet.schema_arrow.names), path)
    _require(parquet.schema_arrow.names, columns, str(path))
    with contextlib.closing(parquet):
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
            yield batch.to_pandas()


def _read_sql_chunks(
    endpoint: Endpoint, columns: list[str], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    from casework.tasks.sql import iter_sql_chunks, sql_columns

    url = endpoint.url or ""
    picked = None
    if endpoint.table:
        present = sql_columns(url, endpoint.table, endpoint.schema)
        _require(present, columns, endpoint.describe())
        picked = columns
    yield from iter_sql_chunks(
        url,
        table=endpoint.table,
        query=endpoint.query,
        schema=endpoint.schema,
        columns=picked,
        chunk_rows=chunk_rows,
    )


def _require(present: Iterable[str], columns: list[str], where: str) -> None:
    from casework.errors import SchemaError

    have = {str(c).strip() for c in present}
    missing = [c for c in columns if c not in have]
    if missing:
        raise SchemaError(
            f"{where}: missing {len(missing)} column(s) the model needs: {missing}; "
            "columns may come in any order and extra ones are ignored"
        )


@contextlib.contextmanager
def _atomic_file(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` that replaces it only on success."""
    check_output_file(target)
    temporary = _new_partial_file(target)
    try:
        yield temporary
        _sync(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _new_partial_file(target: Path) -> Path:
    """A new, empty file beside ``target`` with the mode ``target`` has, or for a new
    output the mode any new file gets (0666 less the umask), as if written in place;
    ``tempfile.mkstemp`` makes it 0600, which the rename would keep."""
    path = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial")
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(handle)
    if target.is_file():
        path.chmod(stat.S_IMODE(target.stat().st_mode))
    return path


def _write_csv(
    frames: Iterable[pd.DataFrame], path: Path, separator: str, gzipped: bool
) -> int:
    """Rows as CSV, gzip-compressed when the target is a ``.csv.gz``: the temporary
    file's own name says nothing of it."""
    written, header = 0, True
    opened = gzip.open if gzipped else open
    with opened(path, "wt", encoding="utf-8", newline="") as handle:
        for frame in frames:
            _times_as_text(frame).to_csv(
                handle, sep=separator, index=False, header=header
            )
            written, header = written + len(frame), False
    return written


def _times_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Date-time columns as ISO 8601 text, each distinct value formatted once.

    A scoring run stamps every row with the same time; formatting it per row would
    cost more than writing the rest of the row.
    """
    times = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    if not times:
        return frame
    frame = frame.copy()
    for column in times:
        values = frame[column]
        text = {value: value.isoformat() for value in values.dropna().unique()}
        frame[column] = values.map(text)
    return frame


def _write_parquet(frames: Iterable[pd.DataFrame], path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    written = 0
    writer: Any = None
    try:
        for frame in frames:
            if writer is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                writer = pq.ParquetWriter(path, table.schema)
            else:
                table = pa.Table.from_pandas(
                    frame, schema=writer.schema, preserve_index=False
                )
            writer.write_table(table)
            written += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return written


def _sync(path: Path) -> None:
    handle: IO[bytes]
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def require_apart(source: Endpoint, sink: Endpoint) -> None:
    """Refuse an output that is the input being read: the scores would replace the
    rows. A query that reads the output table cannot be told apart, and is allowed."""
    if _same_file(source, sink):
        raise DataError(
            f"{sink.path}: the output would replace the input being read; "
            "write the scores to another file"
        )
    if _same_table(source, sink):
        raise DataError(
            f"{sink.describe()}: the output is the table being read; write the scores "
            "to another table"
        )


def _same_file(source: Endpoint, sink: Endpoint) -> bool:
    if source.path is None or sink.path is None:
        return False
    return source.path.resolve() == sink.path.resolve()


def _same_table(source: Endpoint, sink: Endpoint) -> bool:
    if source.kind != "sql" or sink.kind != "sql" or not source.table:
        return False
    if source.table != sink.table:
        return False
    from casework.tasks.sql import same_schema

    return same_schema(source.url or "", source.schema, sink.url or "", sink.schema)
