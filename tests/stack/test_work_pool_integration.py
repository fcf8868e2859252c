"""The other way to run the deployments: ``prefect deploy --all`` from the generated
``prefect.yaml`` onto the work pool ``casework``, and a real ``prefect worker``
running a flow run of it, against real Prefect and MLflow servers on PostgreSQL.

The same steps as docs/stack.md gives for the compose stack's ``worker`` profile.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import servers

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_FLOW_RUN_SECONDS = 180.0
_POLL_SECONDS = 0.5


@pytest.fixture(scope="module")
def client_env(stack, tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("casework-home")
    (home / "prefect").mkdir()
    env = stack.client_env(home / "prefect")
    env["CASEWORK_HOME"] = str(home)
    return env


@pytest.fixture(scope="module")
def worker(stack, client_env, tmp_path_factory) -> Iterator[servers.ServerProcess]:
    """``prefect worker start --pool casework --type process``, healthy; it creates
    the pool, as the compose file's worker service does."""
    workdir = tmp_path_factory.mktemp("worker")
    port = servers.free_port()
    env = dict(client_env)
    env.update(
        PREFECT_WORKER_WEBSERVER_HOST="127.0.0.1",
        PREFECT_WORKER_WEBSERVER_PORT=str(port),
    )
    command = [str(BIN / "prefect"), "worker", "start", "--pool", "casework"]
    process = servers.launch_process(
        "worker",
        [*command, "--type", "process", "--with-healthcheck"],
        env=env,
        workdir=workdir,
        url=f"http://127.0.0.1:{port}",
        health_url=f"http://127.0.0.1:{port}/health",
    )
    try:
        servers.wait_until_healthy(process, timeout_seconds=90)
        yield process
    finally:
        servers.stop_server(process)


@pytest.fixture(scope="module")
def pushed(worker, client_env, tmp_path_factory) -> subprocess.CompletedProcess:
    """``prefect deploy --all`` run next to a copy of the repository's prefect.yaml
    (only ``train-churn`` while this install has no scoring flow to import)."""
    workdir = tmp_path_factory.mktemp("project")
    shutil.copy(REPO / "prefect.yaml", workdir / "prefect.yaml")
    which = ["--all"] if _has_score_flow() else ["--name", "train-churn"]
    return subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", *which],
        env=client_env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _has_score_flow() -> bool:
    import importlib.util

    return importlib.util.find_spec("casework.flows.score") is not None


class TestWorkPool:
    def test_prefect_deploy_registers_every_declared_deployment(self, stack, pushed):
        from prefect.client.orchestration import SyncPrefectClient

        assert pushed.returncode == 0, pushed.stdout[-3000:] + pushed.stderr[-3000:]
        with SyncPrefectClient(stack.prefect_api_url) as client:
            deployment = client.read_deployment_by_name("train/train-churn")
        assert deployment.work_pool_name == "casework"
        assert deployment.entrypoint == "casework.flows.train.train"
        assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * 1"]

    def test_worker_runs_a_flow_run_of_the_pool(self, stack, pushed, worker):
        from prefect.client.orchestration import SyncPrefectClient

        with SyncPrefectClient(stack.prefect_api_url) as client:
            deployment = client.read_deployment_by_name("train/train-churn")
            flow_run = client.create_flow_run_from_deployment(
                deployment.id,
                parameters={"usecase": "churn", "candidates": ["logistic_regression"]},
            )
            deadline = time.monotonic() + _FLOW_RUN_SECONDS
            while time.monotonic() < deadline:
                flow_run = client.read_flow_run(flow_run.id)
                if flow_run.state is not None and flow_run.state.is_final():
                    break
                time.sleep(_POLL_SECONDS)

        assert flow_run.state.is_completed(), worker.log_tail()
        from mlflow import MlflowClient

        champion = MlflowClient(stack.mlflow_tracking_uri).get_model_version_by_alias(
            "churn", "champion"
        )
        assert champion.version == "1"
