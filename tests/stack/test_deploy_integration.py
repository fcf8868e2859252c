"""``casework deploy`` against a real Prefect server and a real MLflow server.

Both servers run on loopback, each on a fresh PostgreSQL database (see
``servers.py``). ``casework deploy churn`` is started as a subprocess, the way the
compose file's casework service runs it; the test then does what the Prefect UI's
Run button does (create a flow run of the deployment, with parameters), waits for
it, and looks the new champion up in the MLflow registry over HTTP to score rows.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from . import servers

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
CHURN_CSV = REPO / "usecases" / "churn" / "data" / "telco_churn.csv"
CHURN_TRAIN_CRON = "0 3 * * 1"

_DEPLOY_READY_SECONDS = 90.0
_FLOW_RUN_SECONDS = 150.0
_SCHEDULED_RUNS_SECONDS = 60.0
_POLL_SECONDS = 0.5


def _casework_env(stack: servers.Stack, home: Path) -> dict[str, str]:
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    env = stack.client_env(home / "prefect")
    env.pop("CASEWORK_HOME", None)
    env.update(CASEWORK_HOME=str(home), CI=os.environ.get("CI", ""))
    return env


@pytest.fixture(scope="module")
def deployed(
    stack: servers.Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.ServerProcess]:
    """``casework deploy churn`` serving, with the runner's health check on."""
    workdir = tmp_path_factory.mktemp("deploy")
    port = servers.free_port()
    env = _casework_env(stack, workdir / "home")
    env.update(
        PREFECT_RUNNER_SERVER_ENABLE="true",
        PREFECT_RUNNER_SERVER_HOST="127.0.0.1",
        PREFECT_RUNNER_SERVER_PORT=str(port),
    )
    runner = servers.launch_process(
        "casework-deploy",
        [str(Path(sys.executable).parent / "casework"), "deploy", "churn"],
        env=env,
        workdir=workdir,
        url=f"http://127.0.0.1:{port}",
        health_url=f"http://127.0.0.1:{port}/health",
    )
    try:
        servers.wait_until_healthy(runner, timeout_seconds=_DEPLOY_READY_SECONDS)
        yield runner
    finally:
        servers.stop_server(runner)


@pytest.fixture(scope="module")
def ui_run(stack: servers.Stack, deployed: servers.ServerProcess) -> dict:
    """A run of ``train/train-churn`` created as the UI's Run button creates one."""
    from prefect.client.orchestration import SyncPrefectClient

    started = time.monotonic()
    with SyncPrefectClient(stack.prefect_api_url) as client:
        deployment = _wait_for_deployment(client, "train/train-churn")
        flow_run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"usecase": "churn", "candidates": ["logistic_regression"]},
        )
        finished = _wait_for_final_state(client, flow_run.id, deployed)
    seconds = time.monotonic() - started
    print(f"train-churn from the API: {finished.state.type.value} in {seconds:.1f} s")
    return {"deployment": deployment, "flow_run": finished, "seconds": seconds}


def _wait_for_deployment(client, name: str):
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + _DEPLOY_READY_SECONDS
    while True:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(_POLL_SECONDS)


def _wait_for_final_state(client, flow_run_id, runner: servers.ServerProcess):
    deadline = time.monotonic() + _FLOW_RUN_SECONDS
    while time.monotonic() < deadline:
        flow_run = client.read_flow_run(flow_run_id)
        if flow_run.state is not None and flow_run.state.is_final():
            return flow_run
        time.sleep(_POLL_SECONDS)
    pytest.fail(
        f"flow run {flow_run_id} not finished after {_FLOW_RUN_SECONDS:.0f} s; "
        f"casework deploy log:\n{runner.log_tail()}"
    )


class TestRunFromTheUi:
    def test_train_churn_completes_with_the_parameters_given(self, ui_run, deployed):
        flow_run = ui_run["flow_run"]
        assert flow_run.state.is_completed(), deployed.log_tail()
        assert flow_run.parameters == {
            "usecase": "churn",
            "candidates": ["logistic_regression"],
        }
        assert flow_run.deployment_id == ui_run["deployment"].id

    def test_champion_is_found_in_the_registry_over_http(self, stack, ui_run):
        response = httpx.get(
            f"{stack.mlflow_tracking_uri}/api/2.0/mlflow/registered-models/alias",
            params={"name": "churn", "alias": "champion"},
            timeout=10,
        )
        response.raise_for_status()
        version = response.json()["model_version"]

        assert version["version"] == "1"
        assert version["tags"]  # casework's tags: fingerprint, metric, threshold
        tags = {tag["key"]: tag["value"] for tag in version["tags"]}
        assert float(tags["casework.test_roc_auc"]) >= 0.84

    def test_champion_scores_raw_rows(self, stack, ui_run):
        import mlflow

        from casework.tasks.model_store import load_pipeline

        raw = pd.read_csv(CHURN_CSV).drop(columns="Churn").head(100)
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(stack.mlflow_tracking_uri)
        try:
            pipeline = load_pipeline("models:/churn@champion")
        finally:
            mlflow.set_tracking_uri(previous)
        proba = pipeline.predict_proba(raw)

        assert proba.shape == (100, 2)
        assert ((proba >= 0) & (proba <= 1)).all()


class TestServedDeployment:
    def test_schedule_is_the_cron_of_the_spec_in_utc(self, ui_run):
        schedules = ui_run["deployment"].schedules
        assert [s.schedule.cron for s in schedules] == [CHURN_TRAIN_CRON]
        assert [s.schedule.timezone for s in schedules] == ["UTC"]
        assert all(s.active for s in schedules)

    def test_next_scheduled_run_is_the_next_fire_time_of_the_cron(self, stack, ui_run):
        from cronsim import CronSim

        scheduled = _scheduled_start_times(stack, ui_run["deployment"].id)
        now = datetime.datetime.now(datetime.UTC)
        expected = next(CronSim(CHURN_TRAIN_CRON, now))

        assert scheduled[0] == expected
        assert scheduled[1] == next(CronSim(CHURN_TRAIN_CRON, expected))

    def test_ui_form_has_typed_parameters_with_defaults_and_descriptions(self, ui_run):
        schema = ui_run["deployment"].parameter_openapi_schema
        properties = schema["properties"]

        assert properties["usecase"]["type"] == "string"
        assert properties["usecase"]["default"] == "churn"
        assert properties["register_winner"]["type"] == "boolean"
        assert properties["register_winner"]["default"] is True
        for name in ("usecase", "candidates", "register_winner"):
            assert properties[name].get("description"), name
        assert ui_run["deployment"].parameters == {"usecase": "churn"}

    def test_deployment_imports_the_flow_by_module_path(self, ui_run):
        assert ui_run["deployment"].entrypoint == "casework.flows.train.train"


def _scheduled_start_times(stack, deployment_id) -> list[datetime.datetime]:
    """Expected start times of the deployment's scheduled runs, once the server's
    scheduler has created them."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    by_deployment = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    scheduled = FlowRunFilter(
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
        )
    )
    deadline = time.monotonic() + _SCHEDULED_RUNS_SECONDS
    with SyncPrefectClient(stack.prefect_api_url) as client:
        while True:
            runs = client.read_flow_runs(
                deployment_filter=by_deployment, flow_run_filter=scheduled
            )
            if len(runs) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(_POLL_SECONDS)
    assert len(runs) >= 2, "the server scheduled fewer than two runs"
    return sorted(run.expected_start_time for run in runs)


class TestUnreachableServers:
    def _deploy(self, stack, tmp_path, usecase, **env_changes):
        env = _casework_env(stack, tmp_path / "home")
        env.update(env_changes)
        return subprocess.run(
            [str(Path(sys.executable).parent / "casework"), "deploy", usecase],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def test_unreachable_mlflow_fails_in_one_line_and_registers_nothing(
        self, stack, deployed, tmp_path
    ):
        from prefect.client.orchestration import SyncPrefectClient

        from tests.helpers import write_usecase

        name = f"probe_{uuid.uuid4().hex[:8]}"
        spec = write_usecase(tmp_path, name, None, schedule={"train": "0 3 * * 1"})
        closed = f"http://127.0.0.1:{servers.free_port()}"
        completed = self._deploy(stack, tmp_path, str(spec), MLFLOW_TRACKING_URI=closed)

        assert completed.returncode == 1
        assert _one_line(completed.stderr).count(closed) == 1
        with SyncPrefectClient(stack.prefect_api_url) as client:
            registered = {deployment.name for deployment in client.read_deployments()}
        assert "train-churn" in registered  # the listing works ...
        assert f"train-{name}" not in registered  # ... and holds no probe

    def test_unreachable_prefect_api_fails_in_one_line(self, stack, tmp_path):
        closed = f"http://127.0.0.1:{servers.free_port()}/api"
        completed = self._deploy(stack, tmp_path, "churn", PREFECT_API_URL=closed)

        assert completed.returncode == 1
        assert closed in _one_line(completed.stderr)


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]
