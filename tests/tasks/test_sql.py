"""Tests of casework.tasks.sql on the real test PostgreSQL."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa

from casework.errors import DataError
from casework.tasks import sql
from casework.usecases.spec import SqlSource


def _count(url: str, table: str, schema: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        statement = sa.select(sa.func.count()).select_from(
            sa.table(table, schema=schema)
        )
        rows = connection.execute(statement).scalar_one()
    engine.dispose()
    return int(rows)


def _frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [f"c{i}" for i in range(start, start + n)], "score": [0.5] * n}
    )


def _failing_after(frames: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield from frames
    raise RuntimeError("scoring failed midway")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TestUrls:
    def test_placeholders_are_filled_from_the_environment(self, monkeypatch):
        monkeypatch.setenv("CW_TEST_PW", "pw")
        assert (
            sql.expand_url("postgresql://u:${CW_TEST_PW}@h/db")
            == "postgresql://u:pw@h/db"
        )

    def test_an_unset_placeholder_names_the_variable(self, monkeypatch):
        monkeypatch.delenv("CW_TEST_UNSET", raising=False)
        with pytest.raises(DataError, match="environment variable CW_TEST_UNSET"):
            sql.expand_url("postgresql://u:${CW_TEST_UNSET}@h/db")

    def test_a_literal_password_is_lifted_into_the_environment(self, monkeypatch):
        monkeypatch.delenv("CW_TEST_LIFTED", raising=False)
        lifted = sql.lift_password(
            "postgresql+psycopg://u:p%40ss@h:5432/db", "CW_TEST_LIFTED"
        )
        assert lifted == "postgresql+psycopg://u:${CW_TEST_LIFTED}@h:5432/db"
        assert sql.expand_url(lifted) == "postgresql+psycopg://u:p%40ss@h:5432/db"

    def test_a_description_never_holds_the_password(self):
        described = sql.describe_sql("postgresql://u:hunter2@h/db", "t", schema="s")
        assert described == "postgresql://u:***@h/db table s.t"

    def test_an_unknown_scheme_is_not_usable(self):
        with pytest.raises(DataError, match=r"SQL URL 'nosuchdb://h/d' is not usable"):
            sql.create_engine("nosuchdb://h/d")

    def test_a_missing_driver_is_named_with_how_to_install_one(self):
        with pytest.raises(DataError) as raised:
            sql.create_engine("mssql+pymssql://scorer:secret@127.0.0.1/crm")
        message = str(raised.value)
        assert "needs the database driver 'pymssql', which is not installed" in message
        assert "pip install" in message
        assert "secret" not in message


@pytest.mark.postgres
class TestSameSchema:
    @pytest.mark.parametrize(
        ("other", "other_schema"),
        [
            ("postgresql://scorer@localhost/crm", "public"),
            ("postgresql+psycopg://scorer@127.0.0.1:5432/crm", None),
        ],
        ids=["localhost-default-port", "driver-default-schema"],
    )
    def test_spellings_of_one_schema_are_the_same(self, other, other_schema):
        url = "postgresql+psycopg://scorer@127.0.0.1:5432/crm"
        assert sql.same_schema(url, None, other, other_schema)

    def test_another_database_or_schema_is_not(self):
        url = "postgresql://scorer@127.0.0.1/crm"
        assert not sql.same_schema(
            url, None, "postgresql://scorer@127.0.0.1/mart", None
        )
        assert not sql.same_schema(url, None, url, "mart")

    def test_a_sqlite_file_is_the_same_by_relative_or_absolute_path(
        self, tmp_path, monkeypatch
    ):
        monkeypatch.chdir(tmp_path)
        absolute = f"sqlite:///{tmp_path / 'crm.db'}"
        assert sql.same_schema("sqlite:///crm.db", None, absolute, "main")


@pytest.mark.postgres
class TestReading:
    def test_a_table_is_read_in_chunks_of_the_given_size(self, pg_url, pg_schema):
        sql.write_table([_frame(25)], pg_url, "rows", pg_schema)
        chunks = list(
            sql.iter_sql_chunks(pg_url, table="rows", schema=pg_schema, chunk_rows=10)
        )
        assert [len(c) for c in chunks] == [10, 10, 5]

    def test_a_query_source_reads_into_one_frame(self, pg_url, pg_schema):
        sql.write_table([_frame(7)], pg_url, "rows", pg_schema)
        source = SqlSource(
            url=pg_url, query=f"SELECT id FROM {pg_schema}.rows WHERE id <> 'c0'"
        )
        frame, where = sql.read_sql_source(source)
        assert list(frame.columns) == ["id"] and len(frame) == 6
        assert "query" in where

    def test_an_unreachable_database_is_retried_then_reported(
        self, monkeypatch, caplog
    ):
        monkeypatch.setattr(sql, "RETRY_DELAY_SECONDS", 0.01)
        url = f"postgresql+psycopg://u:sekrit-pw@127.0.0.1:{_closed_port()}/db"
        with pytest.raises(
            DataError, match="cannot connect after 4 attempts"
        ) as raised:
            list(sql.iter_sql_chunks(url, table="t"))
        assert "sekrit-pw" not in str(raised.value)
        assert "sekrit-pw" not in caplog.text
        assert caplog.text.count("retrying in") == 3


@pytest.mark.postgres
class TestWriting:
    def test_append_creates_the_table_then_adds_rows(self, pg_url, pg_schema):
        sql.write_table([_frame(3)], pg_url, "scores", pg_schema, "append")
        sql.write_table([_frame(2, 3)], pg_url, "scores", pg_schema, "append")
        assert _count(pg_url, "scores", pg_schema) == 5

    def test_a_schema_that_does_not_exist_is_one_clear_error(self, pg_url):
        with pytest.raises(
            DataError, match=r"write failed and was rolled back: .*schema"
        ):
            sql.write_table(
                [_frame(3)], pg_url, "scores", "no_such_schema_zz", "append"
            )

    def test_replace_swaps_in_the_new_rows(self, pg_url, pg_schema):
        sql.write_table([_frame(3)], pg_url, "scores", pg_schema, "append")
        sql.write_table(
            [_frame(2), _frame(2, 2)], pg_url, "scores", pg_schema, "replace"
        )
        assert _count(pg_url, "scores", pg_schema) == 4
        assert sa.inspect(sa.create_engine(pg_url)).get_table_names(
            schema=pg_schema
        ) == ["scores"]

    @pytest.mark.parametrize("mode", ["append", "replace"])
    def test_a_failure_midway_leaves_the_table_as_it_was(self, pg_url, pg_schema, mode):
        sql.write_table([_frame(3)], pg_url, "scores", pg_schema, "append")
        with pytest.raises(RuntimeError, match="midway"):
            sql.write_table(
                _failing_after([_frame(5), _frame(5)]),
                pg_url,
                "scores",
                pg_schema,
                mode,
            )
        assert _count(pg_url, "scores", pg_schema) == 3
        names = sa.inspect(sa.create_engine(pg_url)).get_table_names(schema=pg_schema)
        assert names == ["scores"]

    def test_hostile_table_and_column_names_stay_identifiers(self, pg_url, pg_schema):
        table = 'x"; DROP TABLE victim; --'
        frame = pd.DataFrame({'a"b; --': [1.0], "Label": ["y"]})
        sql.write_table([frame], pg_url, "victim", pg_schema)
        sql.write_table([frame, frame], pg_url, table, pg_schema, "replace")
        assert _count(pg_url, table, pg_schema) == 2
        assert _count(pg_url, "victim", pg_schema) == 1
        read = next(sql.iter_sql_chunks(pg_url, table=table, schema=pg_schema))
        assert list(read.columns) == ['a"b; --', "Label"]

    def test_appending_unknown_columns_names_them(self, pg_url, pg_schema):
        sql.write_table([_frame(1)], pg_url, "scores", pg_schema)
        with pytest.raises(DataError, match=r"no columns \['extra'\]"):
            sql.write_table(
                [_frame(1).assign(extra=1)], pg_url, "scores", pg_schema, "append"
            )
        assert _count(pg_url, "scores", pg_schema) == 1


class TestOtherDatabases:
    @pytest.fixture
    def sqlite_url(self, tmp_path) -> str:
        return f"sqlite:///{tmp_path / 'scores.db'}"

    def test_rows_are_inserted_and_replaced_without_copy(self, sqlite_url):
        sql.write_table([_frame(3)], sqlite_url, "scores")
        sql.write_table([_frame(2)], sqlite_url, "scores", mode="replace")
        chunks = list(sql.iter_sql_chunks(sqlite_url, table="scores"))
        assert chunks[0]["id"].tolist() == ["c0", "c1"]

    def test_a_failure_midway_rolls_back_a_replace(self, sqlite_url):
        sql.write_table([_frame(3)], sqlite_url, "scores")
        with pytest.raises(RuntimeError, match="midway"):
            sql.write_table(
                _failing_after([_frame(5)]), sqlite_url, "scores", None, "replace"
            )
        assert len(next(sql.iter_sql_chunks(sqlite_url, table="scores"))) == 3
        assert sa.inspect(sa.create_engine(sqlite_url)).get_table_names() == ["scores"]

    def test_reading_a_missing_sqlite_file_is_refused_and_creates_nothing(
        self, tmp_path
    ):
        missing = tmp_path / "nosuch.db"
        url = f"sqlite:///{missing}"

        with pytest.raises(DataError) as raised:
            sql.sql_columns(url, "customers")
        with pytest.raises(DataError):
            next(sql.iter_sql_chunks(url, table="customers"))

        assert str(raised.value).startswith(
            f"SQL URL '{url}': no SQLite database at {missing}; check the path"
        )
        assert not missing.exists()

    def test_a_query_the_database_rejects_is_reported_once_not_retried(
        self, sqlite_url, caplog
    ):
        sql.write_table([_frame(3)], sqlite_url, "scores")

        with pytest.raises(DataError) as raised:
            next(sql.iter_sql_chunks(sqlite_url, query="SELEC id FROM scores"))

        assert 'near "SELEC": syntax error' in str(raised.value)
        assert "cannot connect" not in str(raised.value)
        assert "retrying" not in caplog.text
