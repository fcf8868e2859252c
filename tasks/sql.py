"""SQL sources and sinks through SQLAlchemy: chunked reads, one-transaction writes.

A URL may hold ``${VAR}`` placeholders, filled from the environment only when a
connection is made, so passwords stay out of YAML files and flow parameters. Every
description of a URL that casework logs or records goes through :func:`redact_url`.

Table and column names are always quoted identifiers (SQLAlchemy constructs or the
dialect's identifier preparer); they are never pasted into SQL text.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
)

from casework.errors import DataError, first_line
from casework.settings import missing_sqlite_file
from casework.tasks.redact import redact_url
from casework.usecases.spec import SqlSource

__all__ = [
    "WriteMode",
    "create_engine",
    "describe_sql",
    "expand_url",
    "iter_sql_chunks",
    "lift_password",
    "read_sql_source",
    "sql_columns",
    "write_table",
]

logger = logging.getLogger(__name__)

WriteMode = Literal["append", "replace"]

#: Attempts at connecting and running the first read, and the first wait between
#: them in seconds (doubled after each failure).
READ_ATTEMPTS = 4
RETRY_DELAY_SECONDS = 1.0

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_T = TypeVar("_T")


def expand_url(url: str) -> str:
    """``url`` with each ``${VAR}`` replaced by the environment variable's value.

    Raises:
        DataError: a placeholder names a variable that is not set.
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise DataError(
                f"SQL URL {redact_url(url)!r} needs the environment variable {name}, "
                f"which is not set; export {name} before running"
            )
        return os.environ[name]

    return _PLACEHOLDER.sub(value, url)


def lift_password(url: str, variable: str) -> str:
    """Move a literal password out of ``url`` into the environment variable
    ``variable``, and return the URL with a ``${variable}`` placeholder instead.

    The CLI does this before calling a flow, so that the password never becomes a
    flow parameter that Prefect stores and shows. URLs without a password, or
    whose password is already a placeholder, come back unchanged.
    """
    if "://" not in url or "${" in url.split("@")[0]:
        return url
    try:
        parsed = sa.engine.make_url(url)
    except ArgumentError:
        return url
    if not parsed.password:
        return url
    # Stored URL-encoded, as it stood in the URL, so expansion gives it back as is.
    os.environ[variable] = quote(str(parsed.password), safe="")
    masked = parsed.set(password="__casework_password__")
    text = masked.render_as_string(hide_password=False)
    return text.replace("__casework_password__", f"${{{variable}}}")


# Where a table is when a URL or table name leaves it out.
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
_DEFAULT_SCHEMAS = {"postgresql": "public", "sqlite": "main", "mssql": "dbo"}


def create_engine(url: str) -> Engine:
    """An engine for ``url`` after placeholder expansion.

    Raises:
        DataError: a placeholder is unset, or the URL or its driver is not usable.
    """
    try:
        engine = sa.create_engine(expand_url(url), pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise DataError(
            f"SQL URL {redact_url(url)!r} is not usable: {first_line(exc)}; "
            "expected e.g. postgresql+psycopg://user:${PGPASSWORD}@host:5432/db"
        ) from None
    except ImportError as exc:
        raise DataError(
            f"SQL URL {redact_url(url)!r} needs the database driver {exc.name!r}, "
            "which is not installed; install it into casework's environment (e.g. "
            ".venv/bin/pip install pymysql for mysql+pymysql://)"
        ) from None
    if engine.dialect.name == "sqlite" and engine.dialect.driver == "pysqlite":
        _transactional_sqlite(engine)
    return engine


def same_schema(
    url: str, schema: str | None, other_url: str, other_schema: str | None
) -> bool:
    """Whether two URLs, each with a schema, name the same schema of the same
    database, however they are spelled: driver, ``localhost`` or ``127.0.0.1``,
    default port and schema, relative or absolute SQLite path."""
    return _where(url, schema) == _where(other_url, other_schema)


def _where(url: str, schema: str | None) -> tuple[Any, ...]:
    parsed = sa.engine.make_url(expand_url(url))
    backend = parsed.get_backend_name()
    schema = schema or _DEFAULT_SCHEMAS.get(backend)
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            database = str(Path(database).resolve())
        return backend, database, schema
    host = (parsed.host or "").lower()
    host = "127.0.0.1" if host in ("localhost", "::1") else host
    port = parsed.port or _DEFAULT_PORTS.get(backend)
    return backend, host, port, parsed.database, schema


def _engine_to_read(url: str) -> Engine:
    """An engine for reading: a SQLite file must exist (connecting would create it)."""
    database = missing_sqlite_file(expand_url(url))
    if database:
        raise DataError(
            f"SQL URL {redact_url(url)!r}: no SQLite database at {database}; "
            "check the path (sqlite:///relative/path.db, sqlite:////absolute/path.db)"
        )
    return create_engine(url)


def _transactional_sqlite(engine: Engine) -> None:
    """Make Python's sqlite3 put DDL inside the transaction too (SQLAlchemy's recipe
    for pysqlite), so that a failed ``replace`` leaves no table behind."""

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _explicit_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def describe_sql(
    url: str,
    table: str | None = None,
    query: str | None = None,
    schema: str | None = None,
) -> str:
    """A description of a SQL source or sink that holds no password."""
    if table is not None:
        where = f"table {_dotted(table, schema)}"
    else:
        where = f"query {' '.join((query or '').split())[:80]!r}"
    return f"{redact_url(url)} {where}"


def read_sql_source(source: SqlSource) -> tuple[pd.DataFrame, str]:
    """All rows of a SQL source as one frame, and a description without password.

    Reads go in chunks of ``source.chunk_rows`` over a server-side cursor; a
    connection error is retried with backoff before any row is read.

    Raises:
        DataError: the source cannot be reached, or holds no rows.
    """
    where = describe_sql(source.url, source.table, source.query, source.schema_name)
    chunks = list(
        iter_sql_chunks(
            source.url,
            table=source.table,
            query=source.query,
            schema=source.schema_name,
            chunk_rows=source.chunk_rows,
        )
    )
    if not chunks:
        raise DataError(f"{where}: no data rows; expected at least one row")
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    logger.info("Read %d rows from %s in %d chunks", len(frame), where, len(chunks))
    return frame, where


def sql_columns(url: str, table: str, schema: str | None = None) -> list[str]:
    """The column names of a table, in table order.

    Raises:
        DataError: the database cannot be reached or has no such table.
    """
    engine = _engine_to_read(url)
    where = describe_sql(url, table, schema=schema)
    try:
        inspector = _retrying(lambda: sa.inspect(engine), where)
        if not inspector.has_table(table, schema=schema):
            raise DataError(f"{where}: no such table")
        return [
            column["name"] for column in inspector.get_columns(table, schema=schema)
        ]
    finally:
        engine.dispose()


def iter_sql_chunks(
    url: str,
    *,
    table: str | None = None,
    query: str | None = None,
    schema: str | None = None,
    columns: list[str] | None = None,
    chunk_rows: int = 50_000,
) -> Iterator[pd.DataFrame]:
    """Frames of at most ``chunk_rows`` rows from a table or a query.

    Rows stream from a server-side cursor, so memory is bounded by the chunk size,
    not the table size. ``columns`` picks columns of a table by name.

    Raises:
        DataError: the database cannot be reached (after retries) or the read fails.
    """
    where = describe_sql(url, table, query, schema)
    statement = _select(table, query, schema, columns)
    engine = _engine_to_read(url)
    try:
        connection = _retrying(engine.connect, where)
        result = _execute(connection, statement, where)
        with connection:
            names = list(result.keys())
            n_chunks = 0
            while rows := _fetch(result, chunk_rows, where):
                n_chunks += 1
                logger.debug(
                    "Read chunk %d (%d rows) from %s", n_chunks, len(rows), where
                )
                # Plain tuples build a frame about 40 % faster than Row objects.
                yield pd.DataFrame([tuple(row) for row in rows], columns=names)
    finally:
        engine.dispose()


def write_table(
    frames: Iterable[pd.DataFrame],
    url: str,
    table: str,
    schema: str | None = None,
    mode: WriteMode = "append",
) -> int:
    """Write frames to ``table`` in ONE transaction, and return the rows written.

    ``append`` adds rows (creating the table from the first frame if needed);
    ``replace`` fills a new table under a temporary name and swaps it in for the old
    one just before the commit. Any failure, including one raised while producing
    ``frames``, rolls back: the table is left exactly as it was. (The swap relies
    on transactional DDL, as in PostgreSQL and SQLite.)

    Raises:
        DataError: the database cannot be reached, or the frames do not fit the
            existing table of an append.
    """
    if mode not in ("append", "replace"):
        raise DataError(
            f"write mode {mode!r} is not known; expected 'append' or 'replace'"
        )
    where = describe_sql(url, table, schema=schema)
    engine = create_engine(url)
    try:
        with _retrying(engine.connect, where) as connection, connection.begin():
            written = _write_in_transaction(
                connection, frames, table, schema, mode, where
            )
    except DBAPIError as exc:  # the database refused: missing schema, rights, types...
        raise DataError(
            f"{where}: write failed and was rolled back: {_safe(exc)}"
        ) from None
    finally:
        engine.dispose()
    logger.info("Wrote %d rows to %s (%s)", written, where, mode)
    return written


def _write_in_transaction(
    connection: Connection,
    frames: Iterable[pd.DataFrame],
    table: str,
    schema: str | None,
    mode: WriteMode,
    where: str,
) -> int:
    exists = sa.inspect(connection).has_table(table, schema=schema)
    target_name = (
        f"{table}__casework_{uuid.uuid4().hex[:8]}" if mode == "replace" else table
    )
    target: sa.Table | None = None
    if mode == "append" and exists:
        target = sa.Table(table, sa.MetaData(), schema=schema, autoload_with=connection)

    written = 0
    for frame in frames:
        if target is None:
            target = _create_table(connection, target_name, schema, frame)
        _check_fits(frame, target, where)
        _insert(connection, target, frame)
        written += len(frame)

    if mode == "replace" and target is not None:
        _swap(connection, target, table, schema, exists)
    return written


def _create_table(
    connection: Connection, name: str, schema: str | None, frame: pd.DataFrame
) -> sa.Table:
    columns = [sa.Column(str(c), _sql_type(frame[c])) for c in frame.columns]
    created = sa.Table(name, sa.MetaData(), *columns, schema=schema)
    created.create(connection)
    return created


def _swap(
    connection: Connection,
    staging: sa.Table,
    table: str,
    schema: str | None,
    exists: bool,
) -> None:
    """Drop the old table and give the staging table its name, in the transaction."""
    if exists:
        sa.Table(table, sa.MetaData(), schema=schema).drop(connection)
    preparer = connection.dialect.identifier_preparer
    rename = sa.DDL(
        f"ALTER TABLE {preparer.format_table(staging)} RENAME TO {preparer.quote(table)}"
    )
    connection.execute(rename)


def _check_fits(frame: pd.DataFrame, target: sa.Table, where: str) -> None:
    have = {c.name for c in target.columns}
    extra = [str(c) for c in frame.columns if str(c) not in have]
    if extra:
        raise DataError(
            f"{where}: the table has no columns {extra} to append to; its columns are "
            f"{sorted(have)}; use mode 'replace' or another table"
        )


def _insert(connection: Connection, target: sa.Table, frame: pd.DataFrame) -> None:
    if frame.empty:
        return
    plain = frame.astype(object).where(frame.notna(), None)
    if (
        connection.dialect.name == "postgresql"
        and connection.dialect.driver == "psycopg"
    ):
        _copy(connection, target, plain)
        return
    connection.execute(target.insert(), plain.to_dict("records"))


def _copy(connection: Connection, target: sa.Table, plain: pd.DataFrame) -> None:
    """Rows into a PostgreSQL table by COPY, several times faster than INSERT; it
    runs on the same connection, so inside the same transaction."""
    from psycopg import sql as pg

    parts = (target.schema, target.name) if target.schema else (target.name,)
    statement = pg.SQL("COPY {} ({}) FROM STDIN").format(
        pg.Identifier(*parts),
        pg.SQL(", ").join(pg.Identifier(str(c)) for c in plain.columns),
    )
    driver = connection.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in plain.itertuples(index=False, name=None):
            copy.write_row(row)


def _sql_type(column: pd.Series) -> Any:
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return sa.Boolean()
    if pd.api.types.is_integer_dtype(dtype):
        return sa.BigInteger()
    if pd.api.types.is_float_dtype(dtype):
        return sa.Double()
    if isinstance(dtype, pd.DatetimeTZDtype):
        return sa.DateTime(timezone=True)
    if pd.api.types.is_datetime64_dtype(dtype):
        return sa.DateTime()
    return sa.Text()


def _select(
    table: str | None, query: str | None, schema: str | None, columns: list[str] | None
) -> Any:
    if table is None:
        if not query:
            raise DataError("a SQL source needs a table or a query")
        return sa.text(query)
    chosen = [sa.column(c) for c in columns] if columns else [sa.literal_column("*")]
    return sa.select(*chosen).select_from(sa.table(table, schema=schema))


def _execute(connection: Connection, statement: Any, where: str) -> Any:
    """The statement's rows, streamed; a failure here is the statement's, not the
    connection's, so it is not retried."""
    try:
        return connection.execution_options(stream_results=True).execute(statement)
    except sa.exc.DBAPIError as exc:
        connection.close()
        raise DataError(f"{where}: {_safe(exc)}") from None
    except BaseException:
        connection.close()
        raise


def _fetch(result: Any, chunk_rows: int, where: str) -> list[Any]:
    try:
        return result.fetchmany(chunk_rows)
    except sa.exc.DBAPIError as exc:
        raise DataError(f"{where}: reading rows failed: {_safe(exc)}") from None


def _retrying(action: Callable[[], _T], where: str) -> _T:
    """``action()``, retried with doubling waits while the database cannot be reached."""
    delay = RETRY_DELAY_SECONDS
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return action()
        except OperationalError as exc:
            if attempt == READ_ATTEMPTS:
                raise DataError(
                    f"{where}: cannot connect after {READ_ATTEMPTS} attempts: {_safe(exc)}"
                ) from None
            logger.warning(
                "%s: connection failed (attempt %d of %d), retrying in %.1f s: %s",
                where,
                attempt,
                READ_ATTEMPTS,
                delay,
                _safe(exc),
            )
            time.sleep(delay)
            delay *= 2
        except sa.exc.DBAPIError as exc:
            raise DataError(f"{where}: {_safe(exc)}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _dotted(table: str, schema: str | None) -> str:
    return f"{schema}.{table}" if schema else table


def _safe(exc: BaseException) -> str:
    """The first line of a driver error, with any password in it redacted."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip()
    return redact_url(text.splitlines()[0][:300] if text else type(exc).__name__)
