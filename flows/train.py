"""The training flow: ingest → validate → clean → split → train → evaluate → register.

The flow only orchestrates; each step is a task in ``casework.tasks``. Everything a
reviewer needs lands in one MLflow parent run (with a nested run per candidate) and
in a markdown artifact of the Prefect flow run.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from casework import __version__
from casework.tasks import track
from casework.tasks.candidates import check_candidates
from casework.tasks.clean import TabularCleaner
from casework.tasks.evaluate import evaluate_metrics
from casework.tasks.ingest import ingest
from casework.tasks.model_store import log_pipeline
from casework.tasks.register import (
    THRESHOLD_TAG,
    GateDecision,
    RegisteredVersion,
    decide_promotion,
    register_version,
)
from casework.tasks.split import Split, split
from casework.tasks.train import (
    CandidateResult,
    TrainingRows,
    refit_winner,
    select_winner,
    train_candidate,
)
from casework.tasks.validate import ValidData, validate
from casework.usecases import UseCaseSpec, load_usecase
from casework.usecases.hooks import load_callable

__all__ = ["TrainSummary", "train"]

logger = logging.getLogger(__name__)


@dataclass
class TrainSummary:
    """What one training run produced, for the CLI and the Prefect artifact."""

    usecase: str
    primary_metric: str
    candidates: list[dict[str, Any]]
    winner: str
    threshold: float | None
    test_metrics: dict[str, float]
    model_name: str | None
    version: str | None
    aliases: list[str]
    gate: dict[str, Any]
    run_id: str
    experiment_id: str
    tracking_uri: str
    data_fingerprint: str
    rows: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@flow(name="train", flow_run_name="train-{usecase}", log_prints=True)
def train(
    usecase: str = "churn",
    candidates: list[str] | None = None,
    register_winner: bool = True,
) -> dict[str, Any]:
    """Train a use case's candidate models and register the best one.

    Args:
        usecase: a built-in or installed use-case name, or the path to a usecase.yaml.
        candidates: the candidate models to train, instead of the spec's list
            (e.g. ``["logistic_regression", "mlp"]``); empty means the spec's list.
        register_winner: register the winner in the MLflow registry (default true);
            false only tracks the run.
    """
    spec = load_usecase(usecase)
    if candidates:
        spec = spec.with_overrides(candidates=list(candidates))
    check_candidates(spec.candidates, spec.name)
    experiment_id = track.connect(spec.name)

    import mlflow

    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"train-{spec.name}"
    ) as run:
        summary = _train_in_run(spec, run.info.run_id, experiment_id, register_winner)
    _publish_artifact(summary)
    return summary.as_dict()


def _train_in_run(
    spec: UseCaseSpec, run_id: str, experiment_id: str, register: bool
) -> TrainSummary:
    # Ingest and validate
    raw = ingest(spec)
    data = validate(raw.frame, spec)
    track.log_params(_run_params(spec, raw.fingerprint, data))
    track.log_dict(data.report.as_dict(), "quality_report.json")
    track.log_dict(spec.model_dump(mode="json", by_alias=True), "usecase.json")
    track.log_dataset(raw.frame, spec.name, raw.source, raw.fingerprint)

    # Split, and fit the cleaning on training rows only
    parts = split(data, spec.split)
    rows = _training_rows(spec, data, parts)

    # Train candidates concurrently
    futures = [
        train_candidate.submit(name, rows, spec.threshold, spec.split.seed)
        for name in spec.candidates
    ]
    results: list[CandidateResult] = [future.result() for future in futures]
    for result in results:
        track.log_candidate_run(
            experiment_id, run_id, result.name, result.params, result.validation_metrics
        )
    winner = select_winner(results, spec.metric)
    final = refit_winner(
        winner,
        data.X.iloc[parts.train_and_validation],
        data.y[parts.train_and_validation],
    )

    # Evaluate on test rows, never seen before
    X_test, y_test = data.X.iloc[parts.test], data.y[parts.test]
    threshold = winner.threshold.value if winner.threshold else 0.5
    test_metrics = evaluate_metrics(y_test, final.predict_proba(X_test), threshold)
    track.log_metrics(test_metrics, prefix="test_")
    track.log_params({"winner": winner.name})

    # Register
    version, decision = None, None
    if register:
        version, decision = _register(
            spec, final, data, parts, test_metrics, raw.fingerprint, threshold
        )
    return _summary(
        spec,
        results,
        winner,
        test_metrics,
        version,
        decision,
        run_id,
        experiment_id,
        raw.fingerprint,
        data,
    )


def _training_rows(spec: UseCaseSpec, data: ValidData, parts: Split) -> TrainingRows:
    X_train = data.X.iloc[parts.train]
    hook = (
        load_callable(spec.hooks.features, spec.base_dir)
        if spec.hooks.features
        else None
    )
    cleaner = TabularCleaner().fit(hook(X_train) if hook else X_train)
    fn_costs = None
    column = spec.threshold.false_negative_cost_column
    if spec.threshold.strategy == "cost" and column:
        fn_costs = data.X.iloc[parts.validation][column].to_numpy(dtype=float)
    return TrainingRows(
        X_train=X_train,
        y_train=data.y[parts.train],
        X_validation=data.X.iloc[parts.validation],
        y_validation=data.y[parts.validation],
        cleaner=cleaner,
        features_hook=hook,
        validation_fn_costs=fn_costs,
    )


def _register(
    spec: UseCaseSpec,
    final: Any,
    data: ValidData,
    parts: Split,
    test_metrics: dict[str, float],
    fingerprint: str,
    threshold: float,
) -> tuple[RegisteredVersion, GateDecision]:
    hooks = _trusted_hooks(spec)
    X_test, y_test = data.X.iloc[parts.test], data.y[parts.test]
    primary = spec.metric.primary
    decision = decide_promotion(
        spec.model_name,
        spec.metric,
        test_metrics.get(primary, float("nan")),
        X_test,
        y_test,
        hooks,
    )
    metadata = {
        "classes": data.classes,
        "positive_label": data.positive_label,
        "threshold": threshold,
        "usecase": spec.name,
    }
    model_info = log_pipeline(final, data.X.iloc[parts.train[:50]], hooks, metadata)
    tags = {
        "casework.usecase": spec.name,
        "casework.data_fingerprint": fingerprint,
        "casework.code_version": __version__,
        "casework.primary_metric": primary,
        f"casework.test_{primary}": f"{test_metrics.get(primary, float('nan')):.6f}",
        THRESHOLD_TAG: f"{threshold:.6f}",
        "casework.classes": ",".join(data.classes),
    }
    version = register_version(
        spec.model_name, model_info.model_uri, decision, tags, spec.description
    )
    logger.info("Gate: %s", decision.reason)
    return version, decision


def _trusted_hooks(spec: UseCaseSpec) -> tuple[str, ...]:
    if not spec.hooks.features:
        return ()
    function = load_callable(spec.hooks.features, spec.base_dir)
    return (f"{function.__module__}.{function.__qualname__}",)


def _run_params(spec: UseCaseSpec, fingerprint: str, data: ValidData) -> dict[str, Any]:
    return {
        "usecase": spec.name,
        "candidates": ",".join(spec.candidates),
        "split_strategy": spec.split.strategy,
        "test_size": spec.split.test_size,
        "validation_size": spec.split.validation_size,
        "seed": spec.split.seed,
        "primary_metric": spec.metric.primary,
        "promote_margin": spec.metric.promote_margin,
        "threshold_strategy": spec.threshold.strategy,
        "data_fingerprint": fingerprint,
        "rows": len(data.y),
        "feature_columns": data.X.shape[1],
        "classes": ",".join(data.classes),
        "casework_version": __version__,
    }


def _summary(
    spec: UseCaseSpec,
    results: list[CandidateResult],
    winner: CandidateResult,
    test_metrics: dict[str, float],
    version: RegisteredVersion | None,
    decision: GateDecision | None,
    run_id: str,
    experiment_id: str,
    fingerprint: str,
    data: ValidData,
) -> TrainSummary:
    from casework.settings import tracking_uri
    from casework.tasks.redact import redact_url

    primary = spec.metric.primary
    table = [
        {
            "name": r.name,
            "validation_score": r.score(primary),
            "fit_seconds": r.fit_seconds,
        }
        for r in results
    ]
    notes = (
        [winner.threshold.note] if winner.threshold and winner.threshold.note else []
    )
    return TrainSummary(
        usecase=spec.name,
        primary_metric=primary,
        candidates=table,
        winner=winner.name,
        threshold=winner.threshold.value if winner.threshold else None,
        test_metrics={k: float(v) for k, v in test_metrics.items() if np.isfinite(v)},
        model_name=version.name if version else None,
        version=version.version if version else None,
        aliases=list(version.aliases) if version else [],
        gate=asdict(decision) if decision else {},
        run_id=run_id,
        experiment_id=experiment_id,
        tracking_uri=redact_url(tracking_uri()),
        data_fingerprint=fingerprint,
        rows=len(data.y),
        notes=notes,
    )


def _publish_artifact(summary: TrainSummary) -> None:
    lines = [
        f"# {summary.usecase}: trained {len(summary.candidates)} candidates",
        "",
        f"| candidate | validation {summary.primary_metric} | fit seconds |",
        "|---|---|---|",
    ]
    for row in summary.candidates:
        mark = " (winner)" if row["name"] == summary.winner else ""
        lines.append(
            f"| {row['name']}{mark} | {row['validation_score']:.4f} | {row['fit_seconds']:.1f} |"
        )
    test = summary.test_metrics.get(summary.primary_metric, float("nan"))
    lines += ["", f"Test {summary.primary_metric} of the winner: **{test:.4f}**", ""]
    if summary.version:
        lines += [
            f"Registered **{summary.model_name} v{summary.version}** with aliases "
            f"{', '.join(summary.aliases)}.",
            "",
            f"Gate: {summary.gate.get('reason', '')}",
            "",
            f"Load it with `mlflow.sklearn.load_model('models:/{summary.model_name}@champion')`"
            f" or score with `casework score {summary.usecase}`.",
        ]
    lines += ["", f"MLflow run `{summary.run_id}` at {summary.tracking_uri}."]
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=f"train-{summary.usecase}".replace("_", "-"),
        description=f"Training summary of {summary.usecase}",
    )
