"""Task runners: threads by default, Dask on loopback or at an address; the training
flow on a Dask LocalCluster reaches the same champion quality as on threads."""

from __future__ import annotations

import socket

import pytest

from casework.errors import ClusterError
from casework.flows.runners import check_dask_scheduler, make_task_runner
from tests.stack.servers import free_port

# The two quicker candidates: the same bar as the full run, in a fraction of the time.
CANDIDATES = ["logistic_regression", "hist_gradient_boosting"]


class TestMakeTaskRunner:
    def test_threads_is_prefects_thread_pool(self):
        from prefect.task_runners import ThreadPoolTaskRunner

        assert isinstance(make_task_runner(), ThreadPoolTaskRunner)

    def test_local_dask_cluster_stays_on_loopback_without_dashboard(self):
        runner = make_task_runner("dask", dask_workers=3)

        assert runner.address is None
        assert runner.cluster_kwargs["host"] == "127.0.0.1"
        assert runner.cluster_kwargs["dashboard_address"].startswith("127.0.0.1:")
        assert runner.cluster_kwargs["scheduler_kwargs"] == {"dashboard": False}
        assert runner.cluster_kwargs["n_workers"] == 3

    def test_dask_address_of_a_listening_scheduler_is_used(self):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
            runner = make_task_runner("dask", dask_address=address)

        assert runner.address == address
        assert runner.cluster_kwargs == {}

    def test_unknown_runner_lists_the_choices(self):
        with pytest.raises(ClusterError, match=r"'ray' is unknown.*threads, dask"):
            make_task_runner("ray")

    def test_dask_options_need_the_dask_runner(self):
        with pytest.raises(ClusterError, match="need --runner dask"):
            make_task_runner("threads", dask_workers=2)

    def test_zero_dask_workers_is_refused(self):
        with pytest.raises(ClusterError, match="at least 1, got -1"):
            make_task_runner("dask", dask_workers=-1)


class TestCheckDaskScheduler:
    @pytest.mark.parametrize(
        "address", ["127.0.0.1:8786", "http://127.0.0.1:8786", "tcp://127.0.0.1"]
    )
    def test_malformed_address_is_named(self, address):
        with pytest.raises(ClusterError, match="not of the form tcp://host:port"):
            check_dask_scheduler(address)

    def test_silent_address_fails_in_one_line_naming_it(self):
        address = f"tcp://127.0.0.1:{free_port()}"
        with pytest.raises(ClusterError, match=f"at {address} cannot be reached"):
            check_dask_scheduler(address)


@pytest.fixture(scope="module")
def churn_copy(casework_env, churn_frame, tmp_path_factory):
    """The churn data and settings under another name, so that the registry of the
    session's churn tests is left alone."""
    from tests.helpers import write_usecase

    folder = tmp_path_factory.mktemp("churn-dask")
    return str(write_usecase(folder, "churn_dask", churn_frame, candidates=CANDIDATES))


@pytest.fixture(scope="module")
def on_threads(churn_copy):
    """Trained on the default thread runner, not registered."""
    from casework.flows.train import train

    return train(usecase=churn_copy, register_winner=False)


@pytest.fixture(scope="module")
def on_dask(churn_copy):
    """Trained on a local Dask cluster of two worker processes, and registered."""
    from casework.flows.runners import with_task_runner
    from casework.flows.train import train

    flow = with_task_runner(train, "dask", dask_workers=2)
    return flow(usecase=churn_copy, register_winner=True)


@pytest.mark.e2e
class TestTrainOnDask:
    def test_champion_meets_the_quality_bar(self, on_dask):
        assert on_dask["test_metrics"]["roc_auc"] >= 0.84
        assert "champion" in on_dask["aliases"]

    def test_same_winner_and_scores_as_on_threads(self, on_dask, on_threads):
        assert on_dask["winner"] == on_threads["winner"]
        assert on_dask["test_metrics"]["roc_auc"] == pytest.approx(
            on_threads["test_metrics"]["roc_auc"], abs=1e-9
        )
        by_name = {c["name"]: c["validation_score"] for c in on_threads["candidates"]}
        for candidate in on_dask["candidates"]:
            assert candidate["validation_score"] == pytest.approx(
                by_name[candidate["name"]], abs=1e-9
            )

    def test_candidate_tasks_ran_in_dask_workers(self, on_dask):
        """Check that the task runs were recorded by the session's Prefect API, i.e.
        that the workers reported to the same server as the flow."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

        names = [f"train-{name}" for name in CANDIDATES]
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=names))
            )
        assert {run.name for run in runs} >= set(names)


class TestHooksOnWorkers:
    def test_hook_from_a_file_unpickles_where_its_module_cannot_be_imported(
        self, tmp_path
    ):
        """Check that a ``file.py:function`` hook travels by value to a process that
        never loaded the file, as it must to reach a Dask worker."""
        import subprocess
        import sys

        import cloudpickle

        from casework.usecases.hooks import load_callable

        (tmp_path / "my_features.py").write_text(
            "def add_features(frame):\n    return frame * 2\n"
        )
        hook = load_callable("my_features.py:add_features", tmp_path)
        payload = tmp_path / "hook.pkl"
        payload.write_bytes(cloudpickle.dumps(hook))

        script = (
            "import pickle, sys; "
            "f = pickle.loads(open(sys.argv[1], 'rb').read()); print(f(21))"
        )
        completed = subprocess.run(
            [sys.executable, "-c", script, str(payload)],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.strip() == "42"
