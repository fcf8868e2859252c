"""``casework run --all``: every use case trains, concurrently, and one that fails is
reported in one line without stopping the others; plus ``casework run``'s one-line
answers when a server named in the environment is down."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from casework.cli import app
from tests.helpers import registered_versions, run_casework, write_usecase
from tests.stack.servers import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def usecase_paths(casework_env, churn_frame, tmp_path_factory):
    """Two healthy churn-like use cases and one whose data file is missing."""
    churn_sample = churn_frame.sample(n=1500, random_state=11)
    folder = tmp_path_factory.mktemp("all")
    return {
        "first": str(write_usecase(folder, "all_first", churn_sample)),
        "second": str(write_usecase(folder, "all_second", churn_sample)),
        "broken": str(write_usecase(folder, "all_broken", None)),
    }


@pytest.fixture(scope="module")
def outcomes(usecase_paths):
    from casework.flows.train_all import train_all

    return train_all(usecases=list(usecase_paths.values()))


class TestTrainAllFlow:
    def test_each_use_case_gets_an_outcome_in_the_order_asked(
        self, outcomes, usecase_paths
    ):
        assert [o["usecase"] for o in outcomes] == list(usecase_paths.values())

    def test_healthy_use_cases_train_and_register_despite_the_broken_one(
        self, outcomes
    ):
        first, second, _ = outcomes
        for outcome in (first, second):
            assert outcome["ok"], outcome["error"]
            assert outcome["version"] == "1"
            assert outcome["test_score"] > 0.7
        assert len(registered_versions("all_first")) == 1
        assert len(registered_versions("all_second")) == 1

    def test_broken_use_case_is_one_line_naming_its_file(self, outcomes):
        broken = outcomes[2]
        assert not broken["ok"]
        assert broken["error"].endswith("all_broken.csv: source file not found")
        assert "\n" not in broken["error"]
        assert registered_versions("all_broken") == []

    def test_use_cases_train_as_subflows_of_one_parent_run(self, outcomes):
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        with get_client(sync_client=True) as client:
            parents = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["train-all"]))
            )
            children = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["train"]))
            )
        assert parents
        nested = [run for run in children if run.parent_task_run_id is not None]
        assert len(nested) >= 3

    def test_spec_that_does_not_load_fails_only_its_use_case(self, usecase_paths):
        from casework.flows.train_all import train_all

        results = train_all(usecases=["no_such_usecase"], register_winner=False)

        assert results[0]["ok"] is False
        assert "unknown use case 'no_such_usecase'" in results[0]["error"]


class TestRunAllCommand:
    def test_prints_a_summary_and_exits_non_zero_naming_the_failure(
        self, usecase_paths, monkeypatch
    ):
        import casework.flows.train_all as train_all_module

        found = {usecase_paths["second"]: Path(), usecase_paths["broken"]: Path()}
        monkeypatch.setattr(train_all_module, "available_usecases", lambda: found)

        result = CliRunner().invoke(
            app,
            ["run", "--all", "--no-register", "--candidates", "logistic_regression"],
            env={"COLUMNS": "200"},
        )

        assert result.exit_code == 1, result.output
        assert "casework run --all: 2 use cases" in result.output
        errors = [line for line in result.output.splitlines() if "error:" in line]
        assert len(errors) == 1
        assert "all_broken.csv: source file not found" in errors[0]
        assert "Traceback" not in result.output

    def test_use_case_and_all_together_are_refused(self):
        result = CliRunner().invoke(app, ["run", "churn", "--all"])

        assert result.exit_code == 1
        assert "give one use case, or --all" in result.output


def _run_cli(*args: str, home: Path, **env_changes: str):
    started = time.monotonic()
    completed = run_casework(*args, home=home, **env_changes)
    return completed, time.monotonic() - started


class TestUnreachableServers:
    def test_unreachable_mlflow_fails_fast_in_one_line_and_registers_nothing(
        self, tmp_path
    ):
        url = f"http://127.0.0.1:{free_port()}"

        completed, seconds = _run_cli(
            "run", "churn", home=tmp_path, MLFLOW_TRACKING_URI=url
        )

        assert completed.returncode == 1
        lines = completed.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in completed.stderr
        assert f"MLflow tracking server at {url} does not answer" in lines[0]
        assert seconds < 15
        assert not (tmp_path / "mlflow.db").exists()

    def test_unreachable_prefect_api_fails_fast_in_one_line(self, tmp_path):
        url = f"http://127.0.0.1:{free_port()}/api"

        completed, seconds = _run_cli(
            "run", "churn", home=tmp_path, PREFECT_API_URL=url
        )

        assert completed.returncode == 1
        lines = completed.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in completed.stderr
        assert f"Prefect API at {url} does not answer" in lines[0]
        assert seconds < 15

    def test_unreachable_dask_scheduler_fails_in_one_line(self, tmp_path):
        address = f"tcp://127.0.0.1:{free_port()}"

        completed, _ = _run_cli(
            "run", "churn", "--runner", "dask", "--dask-address", address, home=tmp_path
        )

        assert completed.returncode == 1
        lines = completed.stderr.strip().splitlines()
        assert len(lines) == 1 and address in lines[0]
