"""Deployments of casework's flows: one ``train-<usecase>`` and one
``score-<usecase>`` per use case, on the cron schedules of its spec.

The same plan is put to work in two ways, so an operator can choose:

* :func:`serve_deployments` registers the deployments and runs their flow runs in
  this process (``casework deploy``), scheduled ones and those started from the UI;
* :func:`render_prefect_yaml` writes them as a ``prefect.yaml`` for ``prefect deploy
  --all``, whose runs go to a work pool and are picked up by ``prefect worker``.

Which flows are deployed is one table, :data:`DEPLOYED_FLOWS`; the schedule of each
comes from the spec field ``schedule.<kind>``. Every cron expression is checked
before anything is registered.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from casework.errors import SpecError
from casework.usecases import UseCaseSpec, available_usecases, load_usecase

__all__ = [
    "DEFAULT_WORK_POOL",
    "DEPLOYED_FLOWS",
    "SCHEDULE_TIMEZONE",
    "DeployedFlow",
    "PlannedDeployment",
    "check_cron",
    "load_targets",
    "plan_deployments",
    "render_prefect_yaml",
    "serve_deployments",
    "served_flows",
    "to_runner_deployments",
]

logger = logging.getLogger(__name__)

#: Cron schedules of the specs are read in this time zone.
SCHEDULE_TIMEZONE = "UTC"
#: The work pool the deployments of ``prefect.yaml`` send their runs to.
DEFAULT_WORK_POOL = "casework"


@dataclass(frozen=True)
class DeployedFlow:
    """A flow deployed once per use case.

    Attributes:
        kind: ``train`` or ``score``: the prefix of the deployment name and the
            field of the spec's ``schedule`` that holds its cron expression.
        entrypoint: the flow as ``module.function``, importable where casework is
            installed (Prefect's module-path entrypoint).
        description: shown in the Prefect UI; ``{usecase}`` and ``{description}``
            are filled from the spec.
    """

    kind: str
    entrypoint: str
    description: str

    def load(self) -> Any:
        """The flow object, or None when its module is not part of this install."""
        module_name, _, attribute = self.entrypoint.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return None
        return getattr(module, attribute)


# NOTE: one row per deployed flow. Each flow takes the use case as its ``usecase``
# parameter; everything else keeps the flow's defaults, which the UI form shows.
DEPLOYED_FLOWS: tuple[DeployedFlow, ...] = (
    DeployedFlow(
        "train",
        "casework.flows.train.train",
        "Train the candidate models of {usecase} and register the winner: "
        "{description}",
    ),
    DeployedFlow(
        "score",
        "casework.flows.score.score",
        "Score rows of {usecase} with its registered champion: {description}",
    ),
)


@dataclass(frozen=True)
class PlannedDeployment:
    """One deployment to register: a flow, a use case, and its schedule."""

    name: str
    flow: DeployedFlow
    usecase: str
    cron: str | None
    parameters: dict[str, Any]
    description: str
    tags: tuple[str, ...] = field(default=())


def load_targets(usecases: list[str] | None = None) -> list[tuple[str, UseCaseSpec]]:
    """The use cases to deploy, each with the reference its flow runs will get.

    A use case found by name keeps its name; one given as a path gets the absolute
    path of its spec, so that flow runs find it from any working directory.

    Args:
        usecases: names or spec paths; None or empty takes every use case found.

    Raises:
        SpecError, UseCaseNotFoundError: a name is unknown, or a spec is invalid or
            names a candidate or parameter value its every run would fail on.
    """
    from casework.tasks.candidates import check_candidates

    references = list(usecases or available_usecases())
    targets = []
    for reference in references:
        spec = load_usecase(reference)
        check_candidates(spec.candidates, spec.name, spec.candidate_params)
        by_name = spec.spec_path is None or reference == spec.name
        targets.append((reference if by_name else str(spec.spec_path), spec))
    return targets


def plan_deployments(
    targets: list[tuple[str, UseCaseSpec]],
    flows: tuple[DeployedFlow, ...] = DEPLOYED_FLOWS,
) -> list[PlannedDeployment]:
    """Plan a deployment per use case and flow, checking every cron expression first.

    Raises:
        SpecError: a spec's ``schedule.train`` or ``schedule.score`` is not a valid
            cron expression; the message names the file, use case, field and value.
    """
    for _, spec in targets:
        for flow in flows:
            cron = getattr(spec.schedule, flow.kind, None)
            if cron is not None:
                check_cron(spec, f"schedule.{flow.kind}", cron)

    plans = []
    for reference, spec in targets:
        for flow in flows:
            plans.append(_plan(flow, reference, spec))
    return plans


def check_cron(spec: UseCaseSpec, field_name: str, expression: str) -> None:
    """Check a cron expression as the Prefect server will.

    Raises:
        SpecError: the expression is invalid; names the spec file, the use case,
            ``field_name`` and the expression.
    """
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=expression, timezone=SCHEDULE_TIMEZONE)
    except ValidationError:
        where = f"{spec.spec_path}: " if spec.spec_path else ""
        raise SpecError(
            f"{where}use case {spec.name!r}: field {field_name!r}: {expression!r} is "
            "not a valid cron expression (expected five fields, minute hour "
            "day-of-month month day-of-week, e.g. '0 3 * * 1')"
        ) from None


def served_flows(
    plans: list[PlannedDeployment], task_runner: Any = None
) -> list[tuple[PlannedDeployment, Any]]:
    """Each plan with the flow object that will run it.

    Args:
        plans: from :func:`plan_deployments`.
        task_runner: a task runner for every flow (e.g. a ``DaskTaskRunner``);
            None keeps each flow's own (threads).

    Flows whose module is not installed are left out with a warning.
    """
    loaded: dict[str, Any] = {}
    pairs = []
    for plan in plans:
        if plan.flow.kind not in loaded:
            loaded[plan.flow.kind] = _load_flow(plan.flow, task_runner)
        if loaded[plan.flow.kind] is not None:
            pairs.append((plan, loaded[plan.flow.kind]))
    return pairs


def to_runner_deployments(
    plans: list[PlannedDeployment], task_runner: Any = None
) -> list[Any]:
    """Prefect ``RunnerDeployment`` objects of the plans, as they are registered
    (see :func:`served_flows` for the arguments)."""
    return [
        flow.to_deployment(name=plan.name, **_deployment_options(plan))
        for plan, flow in served_flows(plans, task_runner)
    ]


def serve_deployments(
    plans: list[PlannedDeployment],
    task_runner: Any = None,
    limit: int | None = None,
) -> None:
    """Register the deployments and run their flow runs here until interrupted.

    Each flow is handed to the runner as an object (not re-imported from its
    entrypoint), so a ``task_runner`` given here is the one its runs use.

    Args:
        plans: from :func:`plan_deployments`.
        task_runner: see :func:`served_flows`.
        limit: the most flow runs at once; None for no limit.
    """
    import asyncio

    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    runner = Runner(name="casework", pause_on_shutdown=True, limit=limit)
    pairs = served_flows(plans, task_runner)
    for plan, flow in pairs:
        runner.add_flow(flow, name=plan.name, **_deployment_options(plan))
    logger.info("Serving %d deployments", len(pairs))
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal) as exc:
        logger.info("%s: stopped serving", type(exc).__name__)


def render_prefect_yaml(
    plans: list[PlannedDeployment], work_pool: str = DEFAULT_WORK_POOL
) -> str:
    """The ``prefect.yaml`` declaring ``plans`` for a work pool, as text."""
    import yaml

    document = {
        "name": "casework",
        # casework is installed where the worker runs: flows are imported by module
        # path, so there is no code to pull.
        "pull": [],
        "deployments": [_yaml_deployment(plan, work_pool) for plan in plans],
    }
    header = (
        "# Generated by `casework deploy --write-prefect-yaml prefect.yaml` from the\n"
        "# use-case specs; edit the specs and generate again rather than editing this.\n"
        "# `prefect deploy --all` registers these deployments; `prefect worker start\n"
        f"# --pool {work_pool}` runs their flow runs.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=88)


def _plan(flow: DeployedFlow, reference: str, spec: UseCaseSpec) -> PlannedDeployment:
    summary = spec.description.strip() or "no description"
    return PlannedDeployment(
        name=f"{flow.kind}-{spec.name}",
        flow=flow,
        usecase=spec.name,
        cron=getattr(spec.schedule, flow.kind, None),
        parameters={"usecase": reference},
        description=flow.description.format(usecase=spec.name, description=summary),
        tags=("casework", flow.kind, f"usecase:{spec.name}"),
    )


def _deployment_options(plan: PlannedDeployment) -> dict[str, Any]:
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    schedules = [Cron(plan.cron, timezone=SCHEDULE_TIMEZONE)] if plan.cron else []
    return {
        "schedules": schedules,
        "parameters": plan.parameters,
        "description": plan.description,
        "tags": list(plan.tags),
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }


def _load_flow(deployed: DeployedFlow, task_runner: Any) -> Any:
    flow = deployed.load()
    if flow is None:
        logger.warning(
            "Flow %s is not part of this install: no %s-<usecase> deployments",
            deployed.entrypoint,
            deployed.kind,
        )
        return None
    return flow.with_options(task_runner=task_runner) if task_runner else flow


def _yaml_deployment(plan: PlannedDeployment, work_pool: str) -> dict[str, Any]:
    schedules = (
        [{"cron": plan.cron, "timezone": SCHEDULE_TIMEZONE}] if plan.cron else []
    )
    return {
        "name": plan.name,
        "entrypoint": plan.flow.entrypoint,
        "description": plan.description,
        "tags": list(plan.tags),
        "parameters": plan.parameters,
        "schedules": schedules,
        "work_pool": {"name": work_pool},
    }
