"""Tests of the real-server harness: Prefect and MLflow on fresh PostgreSQL databases."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid

import psycopg
import pytest

from tests.helpers import wait_until

from . import servers

# A flow run created the way casework's CLI creates one: by calling a flow in a
# process whose PREFECT_API_URL names the server (no deployment, no worker).
_FLOW_SCRIPT = """
import sys

from prefect import flow
from prefect.runtime import flow_run


@flow(name="casework-stack-ping")
def ping(marker: str) -> str:
    return flow_run.id


print(ping(sys.argv[1]))
"""
_FLOW_TIMEOUT_SECONDS = 60

# What `casework deploy` does, reduced to one flow: serve a deployment on a cron
# schedule. docker-compose.yml probes the runner's /health endpoint for it. Prefect
# refuses to deploy a flow defined in `python -c`, so this goes into a file.
_SERVE_SCRIPT = """
from prefect import flow


@flow(name="casework-stack-serve")
def noop() -> None:
    pass


noop.serve(name="train-stack", cron="0 3 * * 1")
"""

# MLflow keeps the tracking URI and the active experiment in globals and in
# os.environ, so the client side runs in its own process rather than in pytest's.
_MLFLOW_SCRIPT = """
import json
import sys

import mlflow
import numpy as np
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

uri, name = sys.argv[1], sys.argv[2]
mlflow.set_tracking_uri(uri)
X = np.array([[0.0], [1.0], [2.0], [3.0]])
y = np.array([0, 0, 1, 1])
model = LogisticRegression().fit(X, y)

mlflow.set_experiment(name)
with mlflow.start_run():
    mlflow.log_metric("roc_auc", 1.0)
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        signature=infer_signature(X, y),
        pip_requirements=["scikit-learn"],
        registered_model_name=name,
    )
client = MlflowClient()
client.set_registered_model_alias(name, "champion", info.registered_model_version)

loaded = mlflow.sklearn.load_model(f"models:/{name}@champion")
champion = client.get_model_version_by_alias(name, "champion")
diff = np.abs(loaded.predict_proba(X) - model.predict_proba(X)).max()
print(json.dumps({
    "registered_version": str(info.registered_model_version),
    "champion_version": champion.version,
    "metrics": client.get_run(champion.run_id).data.metrics,
    "max_abs_diff": float(diff),
}))
"""


def _database_exists(admin_url: str, database_url: str) -> bool:
    name = database_url.rsplit("/", 1)[-1]
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return row.fetchone() is not None


@pytest.mark.postgres
class TestRunningStack:
    def test_both_servers_report_their_startup_seconds(self, stack, record_property):
        """Check that both servers became healthy and their start-up time is known."""
        for server in (stack.prefect, stack.mlflow):
            record_property(f"{server.name}_startup_seconds", server.startup_seconds)
            print(f"{server.name} healthy after {server.startup_seconds:.1f} s")
            assert math.isfinite(server.startup_seconds)
            assert server.startup_seconds < servers.STARTUP_TIMEOUT_SECONDS
            assert server.url.startswith("http://127.0.0.1:")

    def test_flow_run_from_a_subprocess_is_listed_by_the_prefect_server(
        self, stack, tmp_path
    ):
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        marker = uuid.uuid4().hex
        completed = _run_client(stack, tmp_path, _FLOW_SCRIPT, marker)
        assert completed.returncode == 0, completed.stderr[-3000:]
        flow_run_id = completed.stdout.strip().splitlines()[-1]

        by_name = FlowFilter(name=FlowFilterName(any_=["casework-stack-ping"]))
        with SyncPrefectClient(stack.prefect_api_url) as client:
            flow_run = client.read_flow_run(uuid.UUID(flow_run_id))
            listed = client.read_flow_runs(flow_filter=by_name)

        assert flow_run.state is not None and flow_run.state.is_completed()
        assert flow_run.parameters == {"marker": marker}
        assert str(flow_run.id) in {str(run.id) for run in listed}

    def test_served_deployment_answers_the_runner_health_check(self, stack, tmp_path):
        """Check the /health endpoint the compose file probes for `casework deploy`."""
        from prefect.client.orchestration import SyncPrefectClient

        script = tmp_path / "serve_stack.py"
        script.write_text(_SERVE_SCRIPT)
        port = servers.free_port()
        env = stack.client_env(tmp_path / "prefect-client-home")
        env.update(
            PREFECT_RUNNER_SERVER_ENABLE="true",
            PREFECT_RUNNER_SERVER_HOST="127.0.0.1",
            PREFECT_RUNNER_SERVER_PORT=str(port),
        )
        runner = servers.launch_process(
            "runner",
            [sys.executable, str(script)],
            env=env,
            workdir=tmp_path,
            url=f"http://127.0.0.1:{port}",
            health_url=f"http://127.0.0.1:{port}/health",
        )
        try:
            servers.wait_until_healthy(runner, timeout_seconds=_FLOW_TIMEOUT_SECONDS)
            with SyncPrefectClient(stack.prefect_api_url) as client:
                deployment = client.read_deployment_by_name(
                    "casework-stack-serve/train-stack"
                )
        finally:
            servers.stop_server(runner)

        crons = [s.schedule.cron for s in deployment.schedules]
        assert crons == ["0 3 * * 1"]
        print(f"runner healthy after {runner.startup_seconds:.1f} s")

    def test_mlflow_server_registers_a_skops_model_and_serves_it_by_alias(
        self, stack, tmp_path
    ):
        name = f"stack-check-{uuid.uuid4().hex[:8]}"
        completed = _run_client(
            stack, tmp_path, _MLFLOW_SCRIPT, stack.mlflow_tracking_uri, name
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        seen = json.loads(completed.stdout.strip().splitlines()[-1])

        assert seen["champion_version"] == seen["registered_version"] == "1"
        assert seen["metrics"] == {"roc_auc": 1.0}
        assert seen["max_abs_diff"] < 1e-9
        # --serve-artifacts: the client uploaded through the server into its folder.
        artifacts = stack.mlflow.log_path.parent / "artifacts"
        assert list(artifacts.rglob("*.skops")), f"no .skops file under {artifacts}"


@pytest.mark.postgres
class TestCleanUp:
    def test_stopped_server_leaves_no_process_and_no_database(self, tmp_path):
        """Check that leaving the context stops the process group and drops the db."""
        admin_url = servers.require_postgres()
        with servers.mlflow_server(tmp_path, admin_url) as server:
            with psycopg.connect(server.database_url):
                assert _database_exists(admin_url, server.database_url)

        assert server.process.poll() is not None
        assert not _database_exists(admin_url, server.database_url)

    def test_fresh_database_is_dropped_despite_open_connections(self):
        admin_url = servers.require_postgres()
        with servers.fresh_database(admin_url, "probe") as database_url:
            lingering = psycopg.connect(database_url)
            assert _database_exists(admin_url, database_url)

        assert not _database_exists(admin_url, database_url)
        assert _is_dead(lingering)

    def test_server_without_its_database_times_out_showing_its_log(self, tmp_path):
        """Check that a server that never gets healthy fails with its log tail."""
        admin_url = servers.require_postgres()
        missing = f"casework_test_missing_{uuid.uuid4().hex[:8]}"
        database_url = admin_url.rsplit("/", 1)[0] + f"/{missing}"
        server = servers.launch_mlflow_server(database_url, tmp_path)
        try:
            # On a loaded machine the server may take longer than the 5 s to log it
            wait_until(lambda: missing in server.log_tail(), seconds=120)
            with pytest.raises(
                servers.ServerStartError, match="not healthy after 5 s"
            ) as info:
                servers.wait_until_healthy(server, timeout_seconds=5)
        finally:
            servers.stop_server(server)

        assert server.process.poll() is not None
        assert missing in str(info.value)


class TestWaitUntilHealthy:
    def test_process_that_exits_raises_with_exit_code_and_log(self, tmp_path):
        command = [sys.executable, "-c", "print('boom'); raise SystemExit(3)"]
        server = servers.launch_process(
            "dummy",
            command,
            env={},
            workdir=tmp_path,
            url="http://127.0.0.1:1",
            health_url="http://127.0.0.1:1/health",
        )
        with pytest.raises(
            servers.ServerStartError, match=r"(?s)exited with code 3.*boom"
        ):
            servers.wait_until_healthy(server, timeout_seconds=10)
        servers.stop_server(server)


def _is_dead(connection: psycopg.Connection) -> bool:
    try:
        connection.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    finally:
        connection.close()
    return False


class TestRequirePostgres:
    @pytest.fixture
    def unreachable(self, monkeypatch):
        monkeypatch.setenv(servers.PG_URL_ENV_VAR, "postgresql://nobody@127.0.0.1:1/x")

    def test_skips_when_postgres_is_unreachable(self, unreachable, monkeypatch):
        monkeypatch.delenv("CI", raising=False)
        with pytest.raises(pytest.skip.Exception, match="CASEWORK_TEST_PG_URL"):
            servers.require_postgres()

    def test_fails_instead_of_skipping_under_ci(self, unreachable, monkeypatch):
        monkeypatch.setenv("CI", "true")
        with pytest.raises(pytest.fail.Exception, match=r"127\.0\.0\.1:1"):
            servers.require_postgres()

    def test_admin_url_is_none_when_unreachable(self, unreachable):
        assert servers.postgres_admin_url() is None


def _run_client(
    stack: servers.Stack, tmp_path, script: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh Python process with the stack's client environment."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=stack.client_env(tmp_path / "prefect-client-home"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=_FLOW_TIMEOUT_SECONDS,
        check=False,
    )
