"""Tests of casework.tasks.score_io: endpoints, chunked reads and atomic writes."""

from __future__ import annotations

import gzip
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from casework.errors import DataError, SchemaError
from casework.tasks.score_io import (
    Endpoint,
    input_endpoint,
    output_endpoint,
    read_chunks,
    write_chunks,
)
from casework.usecases import load_usecase


@pytest.fixture(scope="module")
def spec():
    return load_usecase("churn")


def _failing_after(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    yield frame
    raise RuntimeError("scoring failed midway")


class TestEndpoints:
    def test_a_path_is_a_file_endpoint_of_its_type(self, spec, tmp_path):
        endpoint = input_endpoint(spec, str(tmp_path / "rows.parquet"))
        assert endpoint.kind == "parquet" and endpoint.path == tmp_path / "rows.parquet"

    def test_a_url_with_a_schema_qualified_table_is_a_sql_endpoint(self, spec):
        endpoint = output_endpoint(spec, "postgresql+psycopg://u@h/db", "mart.scores")
        assert (endpoint.kind, endpoint.schema, endpoint.table) == (
            "sql",
            "mart",
            "scores",
        )

    def test_a_url_without_table_or_query_is_refused(self, spec):
        with pytest.raises(DataError, match="give exactly one of --input-table"):
            input_endpoint(spec, "postgresql+psycopg://u:pw@h/db")

    def test_a_table_for_a_file_is_refused(self, spec):
        with pytest.raises(DataError, match="is a file; --output-table"):
            output_endpoint(spec, "scores.csv", "scores")

    def test_a_folder_without_a_file_type_is_named_as_a_folder(self, spec, tmp_path):
        with pytest.raises(DataError) as raised:
            output_endpoint(spec, str(tmp_path))
        assert str(raised.value) == (
            f"output {str(tmp_path)!r} is a folder; expected a .csv, .csv.gz or "
            ".parquet file in it, or a SQL URL"
        )

    def test_a_sql_output_without_a_table_asks_for_one(self, spec):
        with pytest.raises(DataError) as raised:
            output_endpoint(spec, "sqlite:///scores.db")
        assert str(raised.value) == (
            "output 'sqlite:///scores.db' is a SQL URL; give --output-table with it"
        )

    def test_an_unknown_file_type_is_refused(self, spec):
        with pytest.raises(DataError, match=r"unknown file type '\.xlsx'"):
            input_endpoint(spec, "rows.xlsx")

    def test_no_input_and_no_spec_default_is_one_clear_error(self, spec):
        with pytest.raises(DataError, match="no input to score; give --input"):
            input_endpoint(spec)


class TestReading:
    def test_csv_is_read_in_chunks_of_the_needed_columns_with_codes_as_text(
        self, tmp_path
    ):
        path = tmp_path / "rows.csv"
        path.write_text("extra, id ,x\n1,007,1.5\n2,008,\n3,009,2\n")
        chunks = list(read_chunks(Endpoint("csv", path=path), ["x", "id"], ["id"], 2))
        assert [len(c) for c in chunks] == [2, 1]
        assert list(chunks[0].columns) == ["id", "x"]
        assert chunks[0]["id"].tolist() == ["007", "008"]

    def test_rows_longer_than_the_header_are_refused_as_in_training(self, tmp_path):
        path = tmp_path / "rows.csv"
        path.write_text("id,x,unused\n1,2,a\n2,3,b,c,d\n")
        with pytest.raises(DataError) as raised:
            list(read_chunks(Endpoint("csv", path=path), ["x", "id"], ["id"], 10))
        assert str(raised.value) == (
            f"{path}: not a readable CSV file: Error tokenizing data. C error: "
            "Expected 3 fields in line 3, saw 5"
        )

    def test_rows_one_field_longer_than_the_header_are_refused(self, tmp_path):
        path = tmp_path / "rows.csv"
        path.write_text("id,x,unused\n1,2,a,z\n2,3,b,y\n")
        with pytest.raises(DataError, match="rows have more fields than the 3 of"):
            list(read_chunks(Endpoint("csv", path=path), ["x", "id"], ["id"], 10))

    def test_a_missing_column_fails_before_any_row_is_read(self, tmp_path):
        path = tmp_path / "rows.csv"
        path.write_text("id,x\n1,2\n")
        with pytest.raises(SchemaError, match=r"missing 1 column\(s\).*\['y'\]"):
            next(read_chunks(Endpoint("csv", path=path), ["x", "y"], [], 10))

    def test_parquet_is_read_in_batches(self, tmp_path):
        path = tmp_path / "rows.parquet"
        pd.DataFrame({"id": range(5), "x": 1.0, "unused": "u"}).to_parquet(path)
        chunks = list(read_chunks(Endpoint("parquet", path=path), ["id", "x"], [], 2))
        assert [len(c) for c in chunks] == [2, 2, 1]
        assert list(chunks[0].columns) == ["id", "x"]


_GZIPPED_ROWS = gzip.compress(b"id,x\n" + b"1,2\n" * 100_000)


class TestGzip:
    def test_a_csv_gz_output_is_gzip_compressed(self, tmp_path):
        path = tmp_path / "scores.csv.gz"
        frames = [pd.DataFrame({"id": ["c0", "c1"], "score": [0.1, 0.9]})]

        write_chunks(frames, Endpoint("csv", path=path))

        with gzip.open(path, "rt", encoding="utf-8") as handle:
            assert handle.read() == "id,score\nc0,0.1\nc1,0.9\n"

    @pytest.mark.parametrize(
        ("content", "problem"),
        [
            (b"id,x\n1,2\n", "Not a gzipped file"),
            (_GZIPPED_ROWS[: len(_GZIPPED_ROWS) // 2], "Compressed file ended"),
        ],
        ids=["plain-text", "cut-short"],
    )
    def test_a_csv_gz_input_that_is_no_gzip_is_one_error(
        self, tmp_path, content, problem
    ):
        path = tmp_path / "rows.csv.gz"
        path.write_bytes(content)
        with pytest.raises(DataError) as raised:
            list(read_chunks(Endpoint("csv", path=path), ["x", "id"], ["id"], 10))
        assert str(raised.value).startswith(
            f"{path}: not a readable CSV file: {problem}"
        )


class TestAtomicWriting:
    @pytest.mark.parametrize("kind", ["csv", "parquet"])
    def test_a_failed_run_leaves_the_previous_file_untouched(self, tmp_path, kind):
        path = tmp_path / f"scores.{kind}"
        good = pd.DataFrame({"id": ["a", "b"], "score": [0.1, 0.9]})
        write_chunks([good], Endpoint(kind, path=path))
        before = path.read_bytes()

        with pytest.raises(RuntimeError, match="midway"):
            write_chunks(_failing_after(good), Endpoint(kind, path=path))

        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]

    @pytest.mark.parametrize("kind", ["csv", "parquet"])
    def test_chunks_are_written_as_one_file(self, tmp_path, kind):
        (tmp_path / "out").mkdir()
        path = tmp_path / "out" / f"scores.{kind}"
        frames = [pd.DataFrame({"id": [f"c{i}"], "score": [i / 10]}) for i in range(3)]
        assert write_chunks(frames, Endpoint(kind, path=path)) == 3
        read = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
        assert read["id"].tolist() == ["c0", "c1", "c2"]

    @pytest.mark.parametrize("kind", ["csv", "parquet"])
    @pytest.mark.parametrize(
        ("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)], ids=["022", "027"]
    )
    def test_the_output_gets_the_mode_of_any_new_file(
        self, tmp_path, umask, mode, kind
    ):
        path = tmp_path / f"scores.{kind}"
        frame = pd.DataFrame({"id": ["a"], "score": [0.5]})
        before = os.umask(umask)
        try:
            write_chunks([frame], Endpoint(kind, path=path))
        finally:
            os.umask(before)

        assert stat.S_IMODE(path.stat().st_mode) == mode
        assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]

    @pytest.mark.parametrize("kind", ["csv", "parquet"])
    def test_an_output_replaced_keeps_its_mode(self, tmp_path, kind):
        path = tmp_path / f"scores.{kind}"
        frame = pd.DataFrame({"id": ["a"], "score": [0.5]})
        write_chunks([frame], Endpoint(kind, path=path))
        path.chmod(0o600)

        write_chunks([frame, frame], Endpoint(kind, path=path))

        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)) == 2


class TestOutputPath:
    def test_a_folder_is_refused_naming_it(self, tmp_path):
        folder = tmp_path / "scores.csv"
        folder.mkdir()
        frame = pd.DataFrame({"id": ["a"], "score": [0.5]})

        with pytest.raises(DataError) as raised:
            write_chunks([frame], Endpoint("csv", path=folder))

        assert str(raised.value) == (
            f"output {folder} is a folder; give a file in it instead, such as "
            f"{folder / 'scores.csv'}"
        )
        assert list(folder.iterdir()) == []

    def test_a_missing_folder_is_refused_and_not_created(self, tmp_path):
        path = tmp_path / "missing" / "scores.parquet"
        frame = pd.DataFrame({"id": ["a"], "score": [0.5]})

        with pytest.raises(DataError) as raised:
            write_chunks([frame], Endpoint("parquet", path=path))

        assert str(raised.value) == (
            f"output {path}: the folder {path.parent} does not exist; create it "
            "first, or correct the path"
        )
        assert not path.parent.exists()


def test_spec_defaults_resolve_relative_to_the_spec(tmp_path: Path):
    spec_path = tmp_path / "usecase.yaml"
    spec_path.write_text(
        "name: demo\nsource: {kind: csv, path: train.csv}\ntarget: {column: y}\n"
        "scoring:\n  input: {kind: parquet, path: new.parquet}\n"
        "  output: {kind: sql, url: 'sqlite:///x.db', table: scores, mode: replace}\n"
    )
    spec = load_usecase(str(spec_path))
    assert input_endpoint(spec).path == tmp_path / "new.parquet"
    assert output_endpoint(spec).table == "scores"
    assert output_endpoint(spec).mode == "replace"
