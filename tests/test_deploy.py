"""Deployments planned from the specs: names, schedules, the prefect.yaml kept in sync
with the specs, and ``casework deploy``'s answers to bad input (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from casework.errors import SpecError
from casework.flows.deploy import (
    DEPLOYED_FLOWS,
    DeployedFlow,
    load_targets,
    plan_deployments,
    render_prefect_yaml,
    served_flows,
    to_runner_deployments,
)
from casework.usecases import available_usecases, load_spec
from tests.helpers import run_casework, write_usecase
from tests.stack.servers import free_port

REPO = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO / "prefect.yaml"


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


class TestPlan:
    def test_each_use_case_gets_a_train_and_a_score_deployment(self):
        plans = plan_deployments(load_targets(["churn"]))

        assert [(p.flow.kind, p.name) for p in plans] == [
            ("train", "train-churn"),
            ("score", "score-churn"),
        ]
        assert [p.cron for p in plans] == ["0 3 * * 1", "0 6 * * *"]
        assert all(p.parameters == {"usecase": "churn"} for p in plans)
        assert all("usecase:churn" in p.tags for p in plans)

    def test_use_case_given_by_path_is_passed_on_as_an_absolute_path(
        self, tmp_path, monkeypatch
    ):
        write_usecase(tmp_path, "local_case", None)
        monkeypatch.chdir(tmp_path)

        plans = plan_deployments(load_targets(["local_case.yaml"]))

        assert plans[0].parameters == {"usecase": str(tmp_path / "local_case.yaml")}
        assert plans[0].name == "train-local_case"

    def test_use_case_without_schedule_is_deployed_unscheduled(self, tmp_path):
        spec = write_usecase(tmp_path, "manual", None)

        plans = plan_deployments(load_targets([str(spec)]))

        assert [p.cron for p in plans] == [None, None]

    @pytest.mark.parametrize("field", ["train", "score"])
    @pytest.mark.parametrize(
        "expression",
        ["0 25 * * 1", "every monday", "0 3 * *", "H 3 * * 1"],
        ids=["hour-out-of-range", "words", "four-fields", "hashed"],
    )
    def test_invalid_cron_names_file_use_case_field_and_expression(
        self, tmp_path, field, expression
    ):
        spec = write_usecase(tmp_path, "badcron", None, schedule={field: expression})

        with pytest.raises(SpecError, match="not a valid cron expression") as info:
            plan_deployments(load_targets([str(spec)]))

        message = str(info.value)
        assert str(spec) in message
        assert "use case 'badcron'" in message
        assert f"field 'schedule.{field}'" in message
        assert repr(expression) in message

    def test_one_bad_cron_fails_the_plan_before_any_use_case_is_planned(self, tmp_path):
        good = write_usecase(tmp_path, "good", None, schedule={"train": "0 1 * * *"})
        bad = write_usecase(tmp_path, "bad", None, schedule={"score": "61 * * * *"})

        with pytest.raises(SpecError, match=r"use case 'bad'.*'61 \* \* \* \*'"):
            plan_deployments(load_targets([str(good), str(bad)]))


class TestRunnerDeployments:
    def test_served_deployments_carry_cron_in_utc_parameters_and_module_entrypoint(
        self,
    ):
        plans = plan_deployments(load_targets(["churn"]), DEPLOYED_FLOWS[:1])

        (deployment,) = to_runner_deployments(plans)

        assert deployment.name == "train-churn"
        assert deployment.entrypoint == "casework.flows.train.train"
        assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * 1"]
        assert [s.schedule.timezone for s in deployment.schedules] == ["UTC"]
        assert deployment.parameters == {"usecase": "churn"}
        assert "Which telecom customers" in deployment.description

    def test_a_flow_missing_from_the_install_is_left_out(self):
        missing = DeployedFlow("score", "casework.flows.not_here.score", "{usecase}")
        plans = plan_deployments(load_targets(["churn"]), (DEPLOYED_FLOWS[0], missing))

        deployments = to_runner_deployments(plans)

        assert [d.name for d in deployments] == ["train-churn"]

    def test_task_runner_given_is_used_by_the_served_flow(self):
        from prefect_dask import DaskTaskRunner

        plans = plan_deployments(load_targets(["churn"]), DEPLOYED_FLOWS[:1])
        runner = DaskTaskRunner(address="tcp://127.0.0.1:8786")

        ((plan, flow),) = served_flows(plans, task_runner=runner)

        assert plan.name == "train-churn"
        assert flow.task_runner == runner


class TestPrefectYaml:
    @pytest.fixture
    def declared(self) -> dict[str, dict]:
        document = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
        return {entry["name"]: entry for entry in document["deployments"]}

    def test_every_use_case_found_is_declared_exactly_as_generated(self, declared):
        """Check prefect.yaml against the specs; regenerate it with
        ``casework deploy --write-prefect-yaml prefect.yaml`` after editing one."""
        generated = yaml.safe_load(
            render_prefect_yaml(plan_deployments(load_targets(None)))
        )
        for entry in generated["deployments"]:
            assert declared.get(entry["name"]) == entry, entry["name"]

    def test_deployments_send_runs_to_the_casework_pool_by_module_path(self, declared):
        for name, entry in declared.items():
            assert entry["work_pool"] == {"name": "casework"}, name
            kind = name.split("-", 1)[0]
            assert entry["entrypoint"] == f"casework.flows.{kind}.{kind}", name
            assert entry["parameters"] == {"usecase": name.split("-", 1)[1]}, name

    def test_declares_the_four_built_in_use_cases(self, declared):
        usecases = {name.split("-", 1)[1] for name in declared}
        assert usecases >= {"churn", "quality", "fraud", "disease"}
        assert set(available_usecases()) <= usecases

    def test_nothing_is_pulled_since_flows_are_imported_from_the_install(self):
        document = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
        assert document["pull"] == []

    def test_write_option_writes_a_file_prefect_can_read(self, tmp_path):
        target = tmp_path / "prefect.yaml"

        completed = run_casework(
            "deploy", "churn", "--write-prefect-yaml", str(target), home=tmp_path
        )

        assert completed.returncode == 0, completed.stderr
        document = yaml.safe_load(target.read_text(encoding="utf-8"))
        names = [entry["name"] for entry in document["deployments"]]
        assert names == ["train-churn", "score-churn"]
        assert (
            load_spec(REPO / "usecases/churn/usecase.yaml").schedule.train
            == (document["deployments"][0]["schedules"][0]["cron"])
        )


class TestDeployCommandErrors:
    @pytest.mark.parametrize("where", ["folder", "missing-folder"])
    def test_a_prefect_yaml_path_that_cannot_be_written_is_one_line(
        self, tmp_path, where
    ):
        target = tmp_path if where == "folder" else tmp_path / "nowhere" / "p.yaml"

        completed = run_casework(
            "deploy", "churn", "--write-prefect-yaml", str(target), home=tmp_path
        )

        assert completed.returncode == 1
        assert completed.stderr.startswith(f"error: --write-prefect-yaml {target}")
        assert completed.stderr.count("\n") == 1
        assert not (tmp_path / "nowhere").exists()

    def test_invalid_cron_fails_in_one_line_naming_use_case_field_and_expression(
        self, tmp_path
    ):
        spec = write_usecase(tmp_path, "nightly", None, schedule={"train": "0 3 * * 8"})

        completed = run_casework("deploy", str(spec), home=tmp_path)

        assert completed.returncode == 1
        line = _one_line(completed.stderr)
        assert "use case 'nightly'" in line
        assert "field 'schedule.train'" in line
        assert "'0 3 * * 8'" in line

    def test_a_bad_candidate_parameter_is_refused_before_anything_is_written(
        self, tmp_path
    ):
        spec = write_usecase(
            tmp_path,
            "nightly",
            None,
            schedule={"train": "0 3 * * 1"},
            candidate_params={"logistic_regression": {"C": -1}},
        )
        target = tmp_path / "prefect.yaml"

        completed = run_casework(
            "deploy", str(spec), "--write-prefect-yaml", str(target), home=tmp_path
        )

        assert completed.returncode == 1
        line = _one_line(completed.stderr)
        assert line.startswith("error: nightly: candidate_params.logistic_regression.C")
        assert "Got -1 instead" in line
        assert not target.exists()

    def test_without_prefect_server_says_one_is_needed(self, tmp_path):
        completed = run_casework("deploy", "churn", home=tmp_path)

        assert completed.returncode == 1
        line = _one_line(completed.stderr)
        assert "needs a Prefect server" in line and "PREFECT_API_URL" in line

    def test_unreachable_prefect_api_is_named_in_one_line(self, tmp_path):
        url = f"http://127.0.0.1:{free_port()}/api"

        completed = run_casework("deploy", "churn", home=tmp_path, PREFECT_API_URL=url)

        assert completed.returncode == 1
        assert url in _one_line(completed.stderr)
