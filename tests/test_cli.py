"""The command line's start-up path and its plain commands."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from casework.cli import app
from casework.tasks.redact import redact_url
from tests.helpers import run_casework, write_usecase
from tests.stack.servers import free_port

HEAVY = ("prefect", "mlflow", "torch", "sklearn", "pandas", "skorch")


class TestStartUp:
    def test_help_path_imports_no_heavy_library(self):
        probe = (
            "import sys; import casework.cli; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])"
        )
        output = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        assert output.strip() == "[]"

    def test_help_lists_the_commands(self):
        result = CliRunner().invoke(app, ["--help"])
        assert result.exit_code == 0
        for command in ("list", "run", "models", "promote"):
            assert command in result.output


class TestCandidatesOption:
    def test_an_empty_list_is_refused_before_anything_starts(self, tmp_path):
        completed = run_casework("run", "churn", "--candidates", " , ", home=tmp_path)

        assert completed.returncode == 1
        assert completed.stderr.startswith("error: --candidates ' , ' names no ")
        assert completed.stderr.count("\n") == 1
        assert not (tmp_path / "mlflow.db").exists()


class TestFlowStart:
    def test_threads_switch_often_while_a_flow_runs_and_as_before_after(
        self, tmp_path, monkeypatch
    ):
        from casework.cli import FLOW_SWITCH_INTERVAL_SECONDS, _started

        # The tracking store opens beside the flow: in this test's own folder
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

        before = sys.getswitchinterval()
        with _started(sys.getswitchinterval, None, None) as flow:
            during = flow()

        assert during == FLOW_SWITCH_INTERVAL_SECONDS != before
        assert sys.getswitchinterval() == before


class TestList:
    def test_list_shows_the_builtin_churn_use_case(self):
        result = CliRunner().invoke(app, ["list"], env={"COLUMNS": "160"})
        assert result.exit_code == 0
        assert "churn" in result.output and "Churn" in result.output


class TestRunArguments:
    def test_no_use_case_says_what_to_give(self, tmp_path):
        result = CliRunner().invoke(app, ["run"], env={"CASEWORK_HOME": str(tmp_path)})
        assert result.exit_code == 1
        assert result.output == (
            "error: casework run needs a use case: a name (see 'casework list'), the "
            "path to a usecase.yaml, or --all to train every use case\n"
        )

    def test_a_use_case_and_all_together_are_refused(self, tmp_path):
        result = CliRunner().invoke(
            app, ["run", "churn", "--all"], env={"CASEWORK_HOME": str(tmp_path)}
        )
        assert result.exit_code == 1
        assert result.output == "error: give one use case, or --all, not both\n"


class TestHome:
    def test_unusable_home_is_one_line_naming_it(self, tmp_path):
        not_a_folder = tmp_path / "file"
        not_a_folder.write_text("")
        result = CliRunner().invoke(
            app, ["models", "churn"], env={"CASEWORK_HOME": str(not_a_folder)}
        )
        assert result.exit_code == 1
        assert f"CASEWORK_HOME={not_a_folder}: cannot use it" in result.output
        assert "Traceback" not in result.output


class TestScoreArgumentsCheckedBeforePrefectStarts:
    @pytest.fixture(autouse=True)
    def _prefect_logging_on_the_real_stderr(self):
        # Prefect binds its console handler to sys.stderr when first imported; inside
        # CliRunner that is a stream closed after the call, which breaks later tests.
        import prefect.main  # noqa: F401

    def _score(self, tmp_path, *args: str):
        return CliRunner().invoke(
            app, ["score", "churn", *args], env={"CASEWORK_HOME": str(tmp_path)}
        )

    def test_missing_input_file_is_named(self, tmp_path):
        result = self._score(tmp_path, "-i", str(tmp_path / "nope.csv"), "-o", "x.csv")
        assert result.exit_code == 1
        assert "nope.csv: input file not found" in result.output
        assert not (tmp_path / "prefect").exists()

    def test_an_input_folder_is_named_as_a_folder(self, tmp_path):
        folder = tmp_path / "exports.csv"
        folder.mkdir()
        result = self._score(tmp_path, "-i", str(folder), "-o", "x.csv")
        assert result.exit_code == 1
        assert f"{folder}: input is a folder; expected a .csv" in result.output

    def test_scoring_a_table_into_itself_is_refused(self, tmp_path):
        url = f"sqlite:///{tmp_path / 'crm.db'}"
        same = ["-i", url, "--input-table", "customers", "-o", url]

        result = self._score(tmp_path, *same, "--output-table", "customers")

        assert result.exit_code == 1
        assert result.output == (
            f"error: {url} table customers: the output is the table being read; "
            "write the scores to another table\n"
        )
        assert not (tmp_path / "crm.db").exists()

    def test_a_table_spelled_another_way_is_still_itself(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        absolute = f"sqlite:///{tmp_path / 'crm.db'}"
        same = ["-i", "sqlite:///crm.db", "--input-table", "customers", "-o", absolute]

        result = self._score(tmp_path, *same, "--output-table", "main.customers")

        assert result.exit_code == 1
        assert "the output is the table being read" in result.output
        assert not (tmp_path / "crm.db").exists()

    def test_unset_variable_in_a_sql_url_is_named(self, tmp_path, monkeypatch):
        monkeypatch.delenv("NOPE_VAR", raising=False)
        result = self._score(
            tmp_path, "-i", "${NOPE_VAR}", "--input-table", "t", "-o", "x.csv"
        )
        assert result.exit_code == 1
        assert "needs the environment variable NOPE_VAR" in result.output

    def test_an_output_that_is_a_folder_is_one_line(self, tmp_path):
        folder = tmp_path / "scores.csv"
        folder.mkdir()
        rows = tmp_path / "rows.csv"
        rows.write_text("customerID\n1\n")

        result = self._score(tmp_path, "-i", str(rows), "-o", str(folder))

        assert result.exit_code == 1
        assert result.output == (
            f"error: output {folder} is a folder; give a file in it instead, such as "
            f"{folder / 'scores.csv'}\n"
        )
        assert not (tmp_path / "prefect").exists()

    def test_an_output_in_a_missing_folder_is_refused_naming_the_folder(self, tmp_path):
        rows = tmp_path / "rows.csv"
        rows.write_text("customerID\n1\n")
        output = tmp_path / "nope" / "scores.csv"

        result = self._score(tmp_path, "-i", str(rows), "-o", str(output))

        assert result.exit_code == 1
        assert result.output == (
            f"error: output {output}: the folder {output.parent} does not exist; "
            "create it first, or correct the path\n"
        )
        assert not output.parent.exists()
        assert not (tmp_path / "prefect").exists()

    def test_negative_chunk_rows_is_one_line(self, tmp_path):
        result = self._score(tmp_path, "--chunk-rows", "-1", "-i", "x.csv")
        assert result.exit_code == 1
        assert result.output == (
            "error: --chunk-rows -1: expected a number of rows above 0 (or 0, the "
            "default, for the spec's)\n"
        )

    def test_version_that_is_not_a_number_is_refused(self, tmp_path):
        result = self._score(tmp_path, "--version", "abc", "-i", "x.csv", "-o", "y.csv")
        assert result.exit_code == 1
        assert "--version 'abc': expected a version number" in result.output

    @pytest.mark.parametrize("version", ["-1", "0", "x"])
    def test_promote_refuses_a_version_that_is_no_number(self, tmp_path, version):
        result = CliRunner().invoke(
            app,
            ["promote", "churn", "--version", version],
            env={"CASEWORK_HOME": str(tmp_path)},
        )
        assert result.exit_code == 1
        assert result.output == (
            f"error: --version {version!r}: expected a version number such as 3\n"
        )

    def test_a_candidate_given_twice_is_refused_before_anything_starts(self, tmp_path):
        result = CliRunner().invoke(
            app,
            ["run", "churn", "--candidates", "mlp,logistic_regression,mlp"],
            env={"CASEWORK_HOME": str(tmp_path)},
        )
        assert result.exit_code == 1
        assert result.output == (
            "error: --candidates 'mlp,logistic_regression,mlp' names mlp more than "
            "once; give each candidate once\n"
        )
        assert not (tmp_path / "prefect").exists()


# Runs the command line with start_local_api wrapped, to record whether Prefect was
# imported before casework's local API was launched (Prefect reads its API URL once).
_LAUNCH_PROBE = """
import sys
import casework.runtime as runtime

launch = runtime.start_local_api

def recorded_launch():
    print(f"prefect imported before launch: {'prefect' in sys.modules}", file=sys.stderr)
    return launch()

runtime.start_local_api = recorded_launch
from casework.cli import main

sys.argv = ["casework", *sys.argv[1:]]
main()
"""


class TestScoreStartsOnlyCaseworksLocalAPI:
    def test_prefect_is_imported_after_the_local_api_and_starts_no_server_of_its_own(
        self, tmp_path
    ):
        probe = tmp_path / "probe.py"
        probe.write_text(_LAUNCH_PROBE)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "MLFLOW_", "CASEWORK_"))
        }
        # A Prefect that missed casework's settings would write under ~/.prefect
        env.update(CASEWORK_HOME=str(tmp_path / "home"), HOME=str(tmp_path))
        rows = tmp_path / "rows.csv"
        rows.write_text("customerID,tenure\n1,3\n")
        score = ["score", "churn", "-i", str(rows), "-o", str(tmp_path / "scores.csv")]

        completed = subprocess.run(
            [sys.executable, str(probe), *score],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

        assert "prefect imported before launch: False" in completed.stderr
        assert "Starting temporary server" not in completed.stderr
        assert not (tmp_path / ".prefect").exists()
        # The flow ran against casework's API, and stopped where it should: no model
        assert completed.returncode == 1
        assert completed.stderr.endswith(
            "error: registered model 'churn' has no alias 'champion' (Registered Model "
            "with name=churn not found); list versions with 'casework models' or train "
            "one with 'casework run'\n"
        )


class TestCandidateParamsCheckedBeforeAnythingStarts:
    @pytest.mark.parametrize(
        ("name", "settings", "named"),
        [
            (
                "logistic_regression",
                {"max_iter": -5},
                "candidate_params.logistic_regression.max_iter: The 'max_iter' "
                "parameter of LogisticRegression must be an int in the range [0, inf). "
                "Got -5 instead.",
            ),
            (
                "hist_gradient_boosting",
                {"learning_rate": "fast"},
                "candidate_params.hist_gradient_boosting.learning_rate: The "
                "'learning_rate' parameter of HistGradientBoostingClassifier must be "
                "a float in the range (0.0, inf). Got 'fast' instead.",
            ),
        ],
        ids=["negative-max-iter", "text-learning-rate"],
    )
    def test_a_bad_value_is_one_line_and_nothing_is_tracked_or_registered(
        self, tmp_path, churn_sample, name, settings, named
    ):
        spec = write_usecase(
            tmp_path,
            "demo",
            churn_sample,
            candidates=[name],
            candidate_params={name: settings},
        )
        tracking_db = tmp_path / "mlflow.db"

        completed = run_casework(
            "run",
            str(spec),
            home=tmp_path,
            MLFLOW_TRACKING_URI=f"sqlite:///{tracking_db}",
        )

        assert completed.returncode == 1
        assert completed.stderr == f"error: demo: {named}\n"
        # Neither MLflow (where a version would be registered) nor Prefect started
        assert not tracking_db.exists()
        assert not (tmp_path / "prefect").exists()


class TestRedactUrl:
    def test_password_in_a_url_is_replaced(self):
        url = "postgresql+psycopg://scorer:s3cr%40t@db.internal:5432/sales"
        assert (
            redact_url(url) == "postgresql+psycopg://scorer:***@db.internal:5432/sales"
        )

    def test_url_without_password_is_unchanged(self):
        assert redact_url("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


class TestRegistryCommands:
    @pytest.mark.parametrize(
        "command", [["models", "churn"], ["promote", "churn", "--version", "1"]]
    )
    def test_a_silent_tracking_server_is_one_line(self, tmp_path, command):
        url = f"http://127.0.0.1:{free_port()}"

        completed = run_casework(*command, home=tmp_path, MLFLOW_TRACKING_URI=url)

        assert completed.returncode == 1
        assert completed.stderr.strip() == (
            f"error: MLflow tracking server at {url} does not answer (ConnectError); "
            "start it or unset MLFLOW_TRACKING_URI to track locally"
        )


class TestReadOnlyCommandsCreateNoTrackingDatabase:
    @pytest.mark.parametrize(
        "command", [["models", "churn"], ["promote", "churn", "--version", "1"]]
    )
    def test_a_missing_sqlite_database_is_one_line_and_is_not_created(
        self, tmp_path, command
    ):
        database = tmp_path / "nowhere" / "dir" / "mlflow.db"

        completed = run_casework(
            *command, home=tmp_path, MLFLOW_TRACKING_URI=f"sqlite:///{database}"
        )

        assert completed.returncode == 1
        assert completed.stderr == (
            f"error: no MLflow tracking database exists at {database}, so nothing is "
            "registered there: train a use case first ('casework run <usecase>'), or "
            "point MLFLOW_TRACKING_URI at the database your models are in\n"
        )
        assert not (tmp_path / "nowhere").exists()


class TestModelsWithoutVersions:
    def test_a_spec_given_by_path_is_suggested_by_path(self, tmp_path):
        from mlflow import MlflowClient

        database = tmp_path / "mlflow.db"
        MlflowClient(f"sqlite:///{database}").search_registered_models()
        spec = write_usecase(tmp_path, "returns", None)

        completed = run_casework(
            "models",
            str(spec),
            home=tmp_path,
            MLFLOW_TRACKING_URI=f"sqlite:///{database}",
        )

        assert completed.returncode == 0, completed.stderr
        assert f"run 'casework run {spec}'" in completed.stdout


USE_INSTEAD = (
    "use a database such as sqlite:///path/to/mlflow.db (or postgresql://, mysql://, "
    "mssql://), or an MLflow server at http(s)://host:port"
)


class TestTrackingURI:
    def test_a_scheme_mlflow_cannot_track_to_is_one_line(self, tmp_path):
        uri = "bogus://user:secret@127.0.0.1/x"

        completed = run_casework(
            "models", "churn", home=tmp_path, MLFLOW_TRACKING_URI=uri
        )

        assert completed.returncode == 1
        assert completed.stderr == (
            "error: MLFLOW_TRACKING_URI=bogus://user:***@127.0.0.1/x: MLflow cannot "
            f"track to 'bogus' URIs; {USE_INSTEAD}\n"
        )

    @pytest.mark.parametrize(
        "uri", ["./mlruns", "file:///{home}/elsewhere/mlruns"], ids=["path", "file-uri"]
    )
    def test_mlflow_file_store_is_refused_in_one_line(self, tmp_path, uri):
        uri = uri.format(home=tmp_path)

        completed = run_casework(
            "models", "churn", home=tmp_path, MLFLOW_TRACKING_URI=uri
        )

        assert completed.returncode == 1
        assert completed.stderr == (
            f"error: MLFLOW_TRACKING_URI={uri}: MLflow's file store (a folder of runs) "
            f"is not supported; {USE_INSTEAD}\n"
        )
        assert not (tmp_path / "mlruns").exists()
        assert not (tmp_path / "elsewhere").exists()

    @pytest.mark.parametrize("command", [["models", "churn"], ["run", "churn"]])
    def test_unreachable_tracking_database_fails_fast_naming_it(
        self, tmp_path, command
    ):
        port = free_port()
        uri = f"postgresql://scorer:s3cret@127.0.0.1:{port}/mlflow"

        started = time.monotonic()
        completed = run_casework(*command, home=tmp_path, MLFLOW_TRACKING_URI=uri)
        seconds = time.monotonic() - started

        assert completed.returncode == 1
        assert seconds < 30  # MLflow alone retries for about 100 s
        assert completed.stderr.startswith(
            f"error: MLflow tracking database at "
            f"postgresql://scorer:***@127.0.0.1:{port}/mlflow cannot be reached: "
        )
        assert "Connection refused" in completed.stderr
        assert completed.stderr.count("\n") == 1
        assert "s3cret" not in completed.stdout + completed.stderr
        assert not (tmp_path / "prefect").exists()
