"""End-to-end tests of the score flow and ``casework score``: real churn rows, a real
MLflow registry, a real Prefect API (test harness) and the test PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from casework.tasks.sql import write_table

pytestmark = pytest.mark.e2e

SCORE_COLUMNS = [
    "customerID",
    "score",
    "label",
    "model_name",
    "model_version",
    "scored_at",
]


@pytest.fixture
def cli(monkeypatch, casework_env) -> CliRunner:
    """The CLI against the session's Prefect harness (no second API warming up)."""
    import casework.runtime

    monkeypatch.setattr(casework.runtime, "start_local_api", lambda: None)
    return CliRunner()


@pytest.fixture
def new_customers(tmp_path, churn_frame) -> Path:
    """Rows of the real CSV with the target column removed."""
    path = tmp_path / "new_customers.csv"
    churn_frame.drop(columns=["Churn"]).to_csv(path, index=False)
    return path


def _sql_spec(tmp_path: Path, name: str, url: str, schema: str, table: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\n"
        f"source: {{kind: sql, url: '{url}', schema: {schema}, table: {table}, "
        "chunk_rows: 2000}\n"
        "target: {column: Churn, positive: 'Yes'}\n"
        "id_columns: [customerID]\n"
        "candidates: [logistic_regression]\n"
        "threshold: {strategy: max_f1}\n"
    )
    return path


def _table(url: str, table: str, schema: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        frame = pd.read_sql(sa.select(sa.table(table, schema=schema).c), connection)
    engine.dispose()
    return frame


def _read_table(url: str, table: str, schema: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        statement = sa.select(sa.literal_column("*")).select_from(
            sa.table(table, schema=schema)
        )
        frame = pd.DataFrame(connection.execute(statement).mappings().all())
    engine.dispose()
    return frame


class TestScoreCommand:
    def test_the_readme_example_scores_every_row_of_the_real_csv(
        self, cli, churn_model, new_customers, tmp_path
    ):
        from casework.cli import app

        output = tmp_path / "scores.csv"
        result = cli.invoke(
            app,
            ["score", "churn", "--input", str(new_customers), "--output", str(output)],
        )

        assert result.exit_code == 0, result.output
        scores = pd.read_csv(output)
        assert list(scores.columns) == SCORE_COLUMNS
        assert len(scores) == 7043 and scores["score"].between(0, 1).all()
        assert set(scores["label"]) == {"Yes", "No"}
        assert (scores["model_version"].astype(str) == churn_model["version"]).all()
        assert f"output: {output} (new file)" in result.output

    def test_scoring_again_says_the_file_is_replaced(
        self, cli, churn_model, new_customers, tmp_path
    ):
        from casework.cli import app

        output = tmp_path / "scores.csv"
        output.write_text("old scores\n")
        arguments = ["score", "churn", "--input", str(new_customers), "-o", str(output)]

        result = cli.invoke(app, arguments)

        assert result.exit_code == 0, result.output
        assert f"output: {output} (replaced)" in result.output
        assert len(pd.read_csv(output)) == 7043

    def test_one_row_is_counted_as_one_row(
        self, cli, churn_model, new_customers, tmp_path
    ):
        from casework.cli import app

        one_row = tmp_path / "one.csv"
        one_row.write_text("".join(new_customers.read_text().splitlines(True)[:2]))
        arguments = [
            "score",
            "churn",
            "-i",
            str(one_row),
            "-o",
            str(tmp_path / "s.csv"),
        ]

        result = cli.invoke(app, arguments)

        assert result.exit_code == 0, result.output
        assert "scored 1 row with churn" in result.output

    def test_a_failed_run_is_one_error_line_and_leaves_the_output_untouched(
        self, cli, churn_model, new_customers, tmp_path
    ):
        from casework.cli import app

        rows = pd.read_csv(new_customers).drop(columns=["tenure", "Contract"])
        broken = tmp_path / "broken.csv"
        rows.to_csv(broken, index=False)
        output = tmp_path / "scores.csv"
        output.write_text("previous,good,scores\n")

        result = cli.invoke(
            app, ["score", "churn", "--input", str(broken), "--output", str(output)]
        )

        assert result.exit_code == 1
        errors = [line for line in result.output.splitlines() if "error:" in line]
        assert len(errors) == 1 and "['tenure', 'Contract']" in errors[0]
        assert output.read_text() == "previous,good,scores\n"

    def test_a_header_only_file_is_one_clear_error(
        self, cli, churn_model, new_customers, tmp_path
    ):
        from casework.cli import app

        header_only = tmp_path / "header.csv"
        header_only.write_text(new_customers.read_text().splitlines()[0] + "\n")
        output = tmp_path / "scores.csv"

        result = cli.invoke(
            app,
            ["score", "churn", "--input", str(header_only), "--output", str(output)],
        )

        assert result.exit_code == 1
        assert "header.csv: no rows to score" in result.output
        assert not output.exists()

    def test_a_file_that_is_not_utf8_names_the_line(
        self, cli, churn_model, new_customers, tmp_path
    ):
        from casework.cli import app

        lines = new_customers.read_text().splitlines()
        latin1 = tmp_path / "latin1.csv"
        latin1.write_bytes(
            "\n".join([lines[0], lines[1].replace(",", ",ä", 1), lines[2]]).encode(
                "latin-1"
            )
        )
        output = tmp_path / "scores.csv"

        result = cli.invoke(
            app, ["score", "churn", "--input", str(latin1), "--output", str(output)]
        )

        assert result.exit_code == 1
        assert "latin1.csv: line 2 is not UTF-8 text (byte 0xe4)" in result.output
        assert not output.exists()

    def test_a_repeated_column_name_is_refused(
        self, cli, churn_model, new_customers, tmp_path
    ):
        from casework.cli import app

        text = new_customers.read_text().splitlines()
        repeated = tmp_path / "repeated.csv"
        repeated.write_text(
            "\n".join([text[0] + ",tenure", *(line + ",999" for line in text[1:50])])
            + "\n"
        )

        result = cli.invoke(
            app, ["score", "churn", "-i", str(repeated), "-o", str(tmp_path / "o.csv")]
        )

        assert result.exit_code == 1
        assert "column names appear twice in the header: ['tenure']" in result.output

    def test_scoring_into_the_input_file_is_refused(
        self, cli, churn_model, new_customers
    ):
        from casework.cli import app

        before = new_customers.read_text()
        result = cli.invoke(
            app, ["score", "churn", "-i", str(new_customers), "-o", str(new_customers)]
        )

        assert result.exit_code == 1
        assert "the output would replace the input" in result.output
        assert new_customers.read_text() == before

    def test_dates_in_a_numeric_column_are_counted_not_scored_as_numbers(
        self, churn_model, churn_frame
    ):
        from casework.tasks.score import enforce_schema, resolve_model

        model = resolve_model("churn", alias="champion")
        rows = churn_frame.drop(columns="Churn").head(5).copy()
        rows["tenure"] = pd.Timestamp("2024-01-01")

        X, unparsable = enforce_schema(rows, model)

        assert unparsable["tenure"] == 5
        assert X["tenure"].isna().all()

    def test_a_failing_run_prints_no_traceback_on_the_console(
        self, casework_env, churn_model, new_customers, tmp_path
    ):
        import os
        import subprocess
        import sys

        broken = tmp_path / "broken.csv"
        pd.read_csv(new_customers).drop(columns=["tenure"]).to_csv(broken, index=False)
        casework = Path(sys.executable).with_name("casework")

        result = subprocess.run(
            [
                str(casework),
                "score",
                "churn",
                "-i",
                str(broken),
                "-o",
                str(tmp_path / "o.csv"),
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=300,
        )

        assert result.returncode == 1
        console = result.stdout + result.stderr
        assert "Traceback" not in console
        errors = [line for line in console.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "'tenure'" in errors[0]

    def test_a_pinned_version_scores_parquet_in_chunks(
        self, churn_model, churn_frame, tmp_path
    ):
        from casework.flows.score import score

        source = tmp_path / "rows.parquet"
        churn_frame.drop(columns=["Churn"]).to_parquet(source)
        summary = score(
            usecase="churn",
            input=str(source),
            output=str(tmp_path / "scores.parquet"),
            version=churn_model["version"],
            chunk_rows=1000,
        )
        assert summary["rows"] == 7043
        assert len(pd.read_parquet(tmp_path / "scores.parquet")) == 7043


@pytest.mark.postgres
class TestScoringOnPostgres:
    @pytest.fixture
    def customers(self, pg_url, pg_schema, churn_frame) -> str:
        """The real churn rows loaded into a table ``customers``."""
        write_table([churn_frame], pg_url, "customers", pg_schema)
        return "customers"

    @pytest.fixture
    def sql_model(self, pg_url, pg_schema, customers, tmp_path, monkeypatch):
        """A model trained from the PostgreSQL table; returns (spec path, summary)."""
        from casework.flows.train import train

        monkeypatch.setenv("CW_TEST_PG", pg_url)
        spec = _sql_spec(tmp_path, "churn_sql", "${CW_TEST_PG}", pg_schema, customers)
        return spec, train(usecase=str(spec), candidates=["logistic_regression"])

    def test_training_reads_the_table_and_registers_a_model(self, sql_model):
        _, summary = sql_model
        assert summary["rows"] == 7043 and summary["version"]
        assert summary["test_metrics"]["roc_auc"] > 0.8

    def test_a_table_is_scored_into_another_table(self, sql_model, pg_url, pg_schema):
        from casework.flows.score import score

        spec, _ = sql_model
        arguments = dict(
            usecase=str(spec),
            input="${CW_TEST_PG}",
            input_table=f"{pg_schema}.customers",
            output="${CW_TEST_PG}",
            output_table=f"{pg_schema}.scores",
            chunk_rows=1500,
        )
        first = score(**arguments, mode="replace")
        score(**arguments, mode="append")

        scores = _read_table(pg_url, "scores", pg_schema)
        assert first["rows"] == 7043 and len(scores) == 2 * 7043
        assert list(scores.columns) == SCORE_COLUMNS
        assert scores["score"].between(0, 1).all()

    def test_a_run_failing_midway_leaves_the_output_table_unchanged(
        self, sql_model, pg_url, pg_schema
    ):
        from casework.errors import DataError
        from casework.flows.score import score

        spec, _ = sql_model
        output = dict(output="${CW_TEST_PG}", output_table=f"{pg_schema}.scores")
        score(
            usecase=str(spec),
            input="${CW_TEST_PG}",
            input_table=f"{pg_schema}.customers",
            mode="replace",
            **output,
        )
        before = _read_table(pg_url, "scores", pg_schema)
        # The database itself fails at row 5001, after chunks have been written.
        failing = (
            f"SELECT *, 1 / (CASE WHEN n > 5000 THEN 0 ELSE 1 END) AS boom FROM "
            f"(SELECT *, row_number() OVER () AS n FROM {pg_schema}.customers) AS c"
        )
        for mode in ("append", "replace"):
            with pytest.raises(DataError, match="division by zero"):
                score(
                    usecase=str(spec),
                    input="${CW_TEST_PG}",
                    input_query=failing,
                    chunk_rows=1000,
                    mode=mode,
                    **output,
                )
        after = _read_table(pg_url, "scores", pg_schema)
        pd.testing.assert_frame_equal(after, before)


@pytest.mark.postgres
class TestPasswords:
    @pytest.fixture
    def secret_url(self, pg_url, pg_schema) -> Iterator[tuple[str, str]]:
        """A URL for a new role with a password, granted on the test schema."""
        from psycopg import sql

        role, password = f"casework_pw_{uuid.uuid4().hex[:8]}", f"pw{uuid.uuid4().hex}"
        engine = sa.create_engine(pg_url)
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                statements = [
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(password)
                    ),
                    sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(
                        sql.Identifier(pg_schema), sql.Identifier(role)
                    ),
                    sql.SQL(
                        "ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}"
                    ).format(sql.Identifier(pg_schema), sql.Identifier(role)),
                ]
                for statement in statements:
                    cursor.execute(statement)
            raw.commit()
            url = sa.engine.make_url(pg_url).set(username=role, password=password)
            yield url.render_as_string(hide_password=False), password
        finally:
            with raw.cursor() as cursor:
                cursor.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                cursor.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
            raw.commit()
            raw.close()
            engine.dispose()

    def test_the_password_never_appears_in_logs_mlflow_or_prefect(
        self,
        cli,
        pg_url,
        pg_schema,
        churn_frame,
        secret_url,
        tmp_path,
        monkeypatch,
        caplog,
        capsys,
    ):
        from casework.cli import app
        from casework.errors import DataError
        from casework.flows.train import train

        url, password = secret_url
        write_table([churn_frame], pg_url, "customers", pg_schema)
        for name in ("casework", "prefect", "sqlalchemy"):
            logging.getLogger(name).addHandler(caplog.handler)
        caplog.set_level(logging.DEBUG, logger="casework")
        monkeypatch.setenv("CW_SECRET_URL", url)
        spec = _sql_spec(
            tmp_path, "churn_pw", "${CW_SECRET_URL}", pg_schema, "customers"
        )

        try:
            train(usecase=str(spec), candidates=["logistic_regression"])
            result = cli.invoke(
                app,
                [
                    "score",
                    str(spec),
                    "--input",
                    url,
                    "--input-table",
                    f"{pg_schema}.customers",
                    "--output",
                    url,
                    "--output-table",
                    f"{pg_schema}.scores",
                ],
            )
            with pytest.raises(DataError, match="cannot connect"):
                from casework.tasks import sql

                monkeypatch.setattr(sql, "READ_ATTEMPTS", 1)
                list(sql.iter_sql_chunks(url.replace(":5432", ":1"), table="x"))
        finally:
            for name in ("casework", "prefect", "sqlalchemy"):
                logging.getLogger(name).removeHandler(caplog.handler)

        assert result.exit_code == 0, result.output
        assert len(_read_table(pg_url, "scores", pg_schema)) == 7043
        captured = capsys.readouterr()
        for text in (caplog.text, captured.out, captured.err, result.output):
            assert password not in text
        assert "***" in caplog.text or "${" in caplog.text
        _assert_not_in_mlflow(password, tmp_path)
        _assert_not_in_prefect(password)


def _assert_not_in_mlflow(password: str, tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    seen = 0
    for name in ("churn_pw",):
        experiment = client.get_experiment_by_name(name)
        for run in client.search_runs([experiment.experiment_id]):
            seen += 1
            assert password not in str(run.data.params)
            assert password not in str(run.data.tags)
            assert password not in str(run.inputs)
            local = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run.info.run_id, dst_path=str(tmp_path / run.info.run_id)
                )
            )
            for path in local.rglob("*"):
                if path.is_file():
                    assert password.encode() not in path.read_bytes(), path
    assert seen >= 2  # the training run and the scoring run
    for version in client.search_model_versions("name = 'churn_pw'"):
        assert password not in str(version.tags)


def _assert_not_in_prefect(password: str) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
        assert any(
            "churn_pw" in str(a.data) or "churn-pw" in a.key for a in artifacts if a.key
        )
        for artifact in artifacts:
            assert password not in str(artifact.data)
        for flow_run in client.read_flow_runs():
            assert password not in str(flow_run.parameters)
