"""Reading a use case's source: files that look like CSV but are not quite."""

from __future__ import annotations

import pytest

from casework.errors import DataError
from casework.tasks.ingest import read_source
from casework.usecases.spec import UseCaseSpec


def _spec(path) -> UseCaseSpec:
    return UseCaseSpec.model_validate(
        {
            "name": "demo",
            "source": {"kind": "csv", "path": str(path)},
            "target": {"column": "y"},
        }
    )


class TestSourcePath:
    def test_a_folder_is_named_as_a_folder(self, tmp_path):
        folder = tmp_path / "exports"
        folder.mkdir()
        with pytest.raises(DataError) as raised:
            read_source(_spec(folder))
        assert str(raised.value) == (
            f"{folder}: source is a folder; expected a .csv or .parquet file"
        )


class TestCsvShape:
    def test_a_repeated_column_name_is_refused(self, tmp_path):
        path = tmp_path / "dup.csv"
        path.write_text("gender,age,gender,y\nF,30,M,1\n")
        with pytest.raises(
            DataError, match=r"dup.csv: column names appear twice.*'gender'"
        ):
            read_source(_spec(path))

    def test_a_file_that_is_not_utf8_says_so(self, tmp_path):
        path = tmp_path / "latin1.csv"
        path.write_bytes("city,y\nZürich,1\nSion,0\n".encode("latin-1"))
        with pytest.raises(DataError) as raised:
            read_source(_spec(path))
        assert str(raised.value) == (
            f"{path}: line 2 is not UTF-8 text (byte 0xfc); save it as UTF-8"
        )

    def test_rows_longer_than_the_header_are_refused(self, tmp_path):
        path = tmp_path / "ragged.csv"
        path.write_text("a,b,y\n1,2,3,4,5\n1,2,0\n")
        with pytest.raises(
            DataError, match=r"ragged.csv: rows have more fields than the 3"
        ):
            read_source(_spec(path))

    def test_longer_rows_starting_1_2_3_are_refused_too(self, tmp_path):
        # Their leading fields make a range index, as plain rows have, from 1
        path = tmp_path / "numbered.csv"
        path.write_text("a,b,y\n1,5,6,0\n2,7,8,1\n3,9,9,0\n")
        with pytest.raises(
            DataError, match=r"numbered.csv: rows have more fields than the 3"
        ):
            read_source(_spec(path))

    def test_a_byte_order_mark_does_not_reach_the_first_column_name(self, tmp_path):
        path = tmp_path / "bom.csv"
        path.write_bytes("\ufeffa,y\n1,0\n".encode())
        frame, _ = read_source(_spec(path))
        assert list(frame.columns) == ["a", "y"]
