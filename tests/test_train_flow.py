"""End to end: the training flow on the real churn data, the champion gate, and the
CLI's answers to bad input. These run real Prefect flows and a real MLflow store."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from casework.cli import app
from tests.helpers import registered_versions, write_usecase

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def churn_run(fresh_registry):
    """One full run of the built-in churn use case, on all 7,043 rows."""
    from casework.flows.train import train

    return train(usecase="churn")


class TestChurnEndToEnd:
    def test_first_run_registers_a_champion_above_the_quality_bar(self, churn_run):
        assert churn_run["version"] == "1"
        assert set(churn_run["aliases"]) == {"champion", "challenger"}
        assert churn_run["test_metrics"]["roc_auc"] >= 0.84
        assert {c["name"] for c in churn_run["candidates"]} == {
            "logistic_regression",
            "hist_gradient_boosting",
            "mlp",
        }

    def test_champion_scores_raw_csv_rows(self, churn_run, churn_frame):
        from casework.tasks.model_store import load_pipeline

        pipeline = load_pipeline("models:/churn@champion")
        raw = churn_frame.drop(columns="Churn").head(200)
        proba = pipeline.predict_proba(raw)

        assert proba.shape == (200, 2)
        assert ((proba >= 0) & (proba <= 1)).all()
        blank_total = churn_frame[churn_frame["TotalCharges"] == " "].drop(
            columns="Churn"
        )
        assert np.isfinite(pipeline.predict_proba(blank_total)).all()

    def test_champion_loads_as_pyfunc_and_returns_probabilities(
        self, churn_run, churn_frame, monkeypatch
    ):
        import mlflow

        monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
        model = mlflow.pyfunc.load_model("models:/churn@champion")
        rows = (
            churn_frame[churn_frame["TotalCharges"] != " "]
            .drop(columns=["Churn"])
            .head(20)
        )
        # MLflow's pyfunc refuses int64 where the signature says double: pass floats.
        rows = rows.astype(
            {"TotalCharges": float, "tenure": float, "SeniorCitizen": float}
        )
        proba = np.asarray(model.predict(rows))
        assert proba.shape == (20, 2)
        assert np.allclose(proba.sum(axis=1), 1.0)

    def test_signature_and_example_hold_no_id_column(self, churn_run):
        import mlflow

        info = mlflow.models.get_model_info("models:/churn@champion")
        inputs = info.signature.inputs.input_names()
        assert "customerID" not in inputs and "Churn" not in inputs
        assert (
            info.signature.inputs.to_dict()[inputs.index("TotalCharges")]["type"]
            == "double"
        )

    def test_run_records_its_data_set_with_fingerprint_schema_and_rows(self, churn_run):
        import json

        from mlflow import MlflowClient

        run = MlflowClient().get_run(churn_run["run_id"])
        (recorded,) = run.inputs.dataset_inputs
        tags = {tag.key: tag.value for tag in recorded.tags}
        columns = {
            column["name"]: column["type"]
            for column in json.loads(recorded.dataset.schema)["mlflow_colspec"]
        }

        assert recorded.dataset.name == "churn"
        assert recorded.dataset.digest == churn_run["data_fingerprint"]
        assert tags["rows"] == "7043" and tags["mlflow.data.context"] == "training"
        assert columns["tenure"] == "long" and columns["MonthlyCharges"] == "double"
        assert columns["TotalCharges"] == "string"  # as read, before cleaning

    def test_worse_run_is_challenger_and_keeps_the_champion(self, churn_run):
        from casework.flows.train import train

        worse = train(usecase="churn", candidates=["baseline"])

        assert worse["version"] == "2"
        assert worse["aliases"] == ["challenger"]
        assert worse["gate"]["promote"] is False
        assert worse["gate"]["champion_version"] == "1"
        from casework.tasks.registry_view import list_versions

        by_version = {row["version"]: row["aliases"] for row in list_versions("churn")}
        assert by_version == {"1": "champion", "2": "challenger"}

    def test_models_command_lists_versions_with_aliases(self, churn_run):
        result = CliRunner().invoke(app, ["models", "churn"], env={"COLUMNS": "160"})
        assert result.exit_code == 0, result.output
        assert "champion" in result.output and "roc_auc" in result.output


class _WarningsOf(logging.Handler):
    """The warning messages a logger and its children emit while in use."""

    def __init__(self, name: str):
        super().__init__(logging.WARNING)
        self.logger = logging.getLogger(name)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _WarningsOf:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)


def _run_cli(spec_path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", str(spec_path)])
    return result.exit_code, result.output


def _flow_run_names() -> list[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return [run.name for run in client.read_flow_runs()]


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.usefixtures("fresh_registry")
class TestBadInput:
    def test_missing_source_file_is_named(self, tmp_path):
        spec = write_usecase(tmp_path, "missing_src", None)
        code, output = _run_cli(spec)
        assert code == 1
        assert "missing_src.csv: source file not found" in _error_line(output)
        assert registered_versions("missing_src") == []

    def test_empty_file_is_refused(self, tmp_path):
        spec = write_usecase(tmp_path, "empty_src", None)
        (tmp_path / "empty_src.csv").write_text("")
        code, output = _run_cli(spec)
        assert code == 1
        assert "empty_src.csv: the file is empty" in _error_line(output)
        assert registered_versions("empty_src") == []

    def test_absent_target_column_lists_the_columns(self, tmp_path, churn_sample):
        spec = write_usecase(tmp_path, "no_target", churn_sample.drop(columns="Churn"))
        code, output = _run_cli(spec)
        assert code == 1
        line = _error_line(output)
        assert "target column 'Churn' not found" in line and "'TotalCharges'" in line
        assert registered_versions("no_target") == []

    def test_single_class_target_is_refused(self, tmp_path, churn_sample):
        frame = churn_sample.assign(Churn="No")
        spec = write_usecase(tmp_path, "one_class", frame)
        code, output = _run_cli(spec)
        assert code == 1
        assert "single class ('No')" in _error_line(output)
        assert registered_versions("one_class") == []

    def test_label_spellings_are_normalised_into_one_class(
        self, tmp_path, churn_sample
    ):
        frame = churn_sample.copy()
        spellings = np.resize(
            np.array(["Yes", " yes", "YES"]), (frame["Churn"] == "Yes").sum()
        )
        frame.loc[frame["Churn"] == "Yes", "Churn"] = spellings
        spec = write_usecase(tmp_path, "spellings", frame)

        code, output = _run_cli(spec)

        assert code == 0, output
        versions = registered_versions("spellings")
        assert versions[0].tags["casework.classes"] == "No,Yes"
        # The flow run is named after the use case, not after the spec's path
        assert "train-spellings" in _flow_run_names()

    def test_byte_order_mark_before_the_first_header_is_ignored(
        self, tmp_path, churn_sample
    ):
        spec = write_usecase(tmp_path, "bom", None)
        churn_sample.to_csv(tmp_path / "bom.csv", index=False, encoding="utf-8-sig")
        assert (tmp_path / "bom.csv").read_bytes()[:3] == b"\xef\xbb\xbf"

        code, output = _run_cli(spec)

        assert code == 0, output
        from casework.tasks.model_store import load_pipeline

        cleaner = load_pipeline("models:/bom@champion").named_steps["clean"]
        assert "customerID" not in cleaner.input_columns_
        assert "gender" in cleaner.input_columns_

    def test_entirely_empty_column_is_dropped_and_rows_with_it_still_score(
        self, tmp_path, churn_sample
    ):
        frame = churn_sample.assign(Notes=np.nan)
        spec = write_usecase(tmp_path, "empty_col", frame)
        warnings = _WarningsOf("casework")

        with warnings:
            code, output = _run_cli(spec)

        assert code == 0, output
        dropped = [w for w in warnings.messages if "Dropping columns with no" in w]
        assert dropped == [
            "Dropping columns with no values in the training rows: ['Notes']"
        ]
        from casework.tasks.model_store import load_pipeline

        pipeline = load_pipeline("models:/empty_col@champion")
        assert pipeline.named_steps["clean"].empty_columns_ == ["Notes"]
        rows = frame.drop(columns="Churn").head(5).assign(Notes="called twice")
        assert pipeline.predict_proba(rows).shape == (5, 2)

    def test_unknown_use_case_suggests_a_name(self):
        result = CliRunner().invoke(app, ["run", "chrun"])
        assert result.exit_code == 1
        assert "did you mean churn" in _error_line(result.output)


def test_quality_report_is_logged_with_the_run(churn_run):
    import json

    import mlflow

    path = mlflow.artifacts.download_artifacts(
        run_id=churn_run["run_id"], artifact_path="quality_report.json"
    )
    report = json.loads(open(path).read())
    assert report["rows"] == 7043
    assert report["missing_cells"]["TotalCharges"] == 11
    assert report["class_balance"] == {"No": 5174, "Yes": 1869}
    assert pd.notna(churn_run["data_fingerprint"])
