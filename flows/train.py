"""The training flow: ingest → validate → clean → split → train → evaluate → register.

The flow only orchestrates; each step is a task in ``casework.tasks``. Everything a
reviewer needs lands in one MLflow parent run (with a nested run per candidate) and
in a markdown artifact of the Prefect flow run.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import mlflow
import numpy as np
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from casework import __version__
from casework.errors import DataError
from casework.tasks import track
from casework.tasks.candidates import check_candidates
from casework.tasks.candidates import import_libraries as import_candidate_libraries
from casework.tasks.card import ModelCard, card_summary, log_card
from casework.tasks.clean import TabularCleaner
from casework.tasks.ingest import RawData, ingest
from casework.tasks.model_store import log_pipeline, trusted_hook_names
from casework.tasks.redact import redact_url
from casework.tasks.register import (
    TEST_ROWS_TAG,
    THRESHOLD_TAG,
    GateDecision,
    RegisteredVersion,
    decide_promotion,
    register_version,
)
from casework.tasks.report import TestEvaluation, evaluate_test, log_plots
from casework.tasks.split import Split, split
from casework.tasks.train import (
    CandidateResult,
    TrainingRows,
    refit_winner,
    select_winner,
    train_candidate,
    tune_threshold,
)
from casework.tasks.validate import ValidData, validate
from casework.usecases import UseCaseSpec, load_usecase
from casework.usecases.discovery import usecase_label
from casework.usecases.hooks import call_for_frame, load_callable

__all__ = ["TrainSummary", "import_libraries", "summary_markdown", "train"]

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
    threshold_strategy: str | None = None
    classes: list[str] = field(default_factory=list)
    top_features: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def import_libraries(candidates: list[str]) -> None:
    """Import the heavy libraries a training run needs: skops, which saves the model
    and lists scikit-learn's types when imported, and the candidates' own. A caller
    can pay for them while it waits for something else, as the CLI does while
    Prefect's local API boots."""
    import skops.io  # noqa: F401

    import_candidate_libraries(candidates)


def _run_name() -> str:
    """``train-<use case>``, also when the use case is given as a path."""
    from prefect.runtime import flow_run

    return f"train-{usecase_label(flow_run.parameters['usecase'])}"


@flow(name="train", flow_run_name=_run_name, log_prints=True)
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
    check_candidates(spec.candidates, spec.name, spec.candidate_params)
    experiment_id = track.connect(spec.name)

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

    # Split, and fit the cleaning on training rows only
    parts = split(data, spec.split)
    rows = _training_rows(spec, data, parts)

    # Train candidates concurrently, recording the inputs while they fit; pick,
    # tune and refit the winner
    futures = _submit_candidates(spec, rows)
    _track_inputs(spec, raw, data)
    results = _candidate_results(futures, run_id, experiment_id)
    winner = _with_final_threshold(
        spec, select_winner(results, spec.metric), data, parts
    )
    fit_rows = parts.train_and_validation
    final = refit_winner(winner, data.X.iloc[fit_rows], data.y[fit_rows])

    # Evaluate on test rows, never seen before; the plots are drawn in a worker
    # while the gate scores the champion and the model is written
    evaluation = _evaluate(spec, final, winner, data, parts)
    plots = _submit_plots(spec, final, data, parts, evaluation, run_id)
    gate = (
        _gate_and_log_model(spec, final, data, parts, evaluation) if register else None
    )
    importance = plots.result()
    card = _model_card(spec, raw, data, parts, winner, evaluation, importance)

    # Register
    version, decision = None, None
    if gate is not None:
        version, decision = _register(spec, data, evaluation, card, *gate)
    else:
        log_card(card)
    return _summary(
        spec,
        results,
        winner,
        evaluation,
        version,
        decision,
        run_id,
        experiment_id,
        raw.fingerprint,
        data,
        importance,
    )


def _track_inputs(spec: UseCaseSpec, raw: RawData, data: ValidData) -> None:
    # NOTE: a Ctrl-C landing inside one of these SQLite writes can leave MLflow
    # waiting 20 s on a lock its own interrupted session holds, then printing
    # tracebacks and exiting 1 (2 of 14 tries in a 0.2 s window); elsewhere it is 130.
    track.log_params(_run_params(spec, raw.fingerprint, data))
    track.log_dict(data.report.as_dict(), "quality_report.json")
    track.log_dict(spec.model_dump(mode="json", by_alias=True), "usecase.json")
    track.log_dataset(raw.frame, spec.name, raw.source, raw.fingerprint)


def _submit_candidates(spec: UseCaseSpec, rows: TrainingRows) -> list[Any]:
    """Every candidate, submitted to the flow's task runner."""
    return [
        train_candidate.submit(
            name, rows, spec.threshold, spec.split.seed, spec.candidate_params.get(name)
        )
        for name in spec.candidates
    ]


def _candidate_results(
    futures: list[Any], run_id: str, experiment_id: str
) -> list[CandidateResult]:
    """The fitted candidates, each logged as a nested MLflow run."""
    results: list[CandidateResult] = [future.result() for future in futures]
    for result in results:
        track.log_candidate_run(
            experiment_id, run_id, result.name, result.params, result.validation_metrics
        )
    return results


def _with_final_threshold(
    spec: UseCaseSpec, winner: CandidateResult, data: ValidData, parts: Split
) -> CandidateResult:
    """The winner with its threshold chosen again where validation rows were few; a
    time split keeps the threshold from its latest rows."""
    if spec.split.strategy == "time":
        return winner
    fit_rows = parts.train_and_validation
    threshold = tune_threshold(
        winner,
        data.X.iloc[fit_rows],
        data.y[fit_rows],
        spec.threshold,
        spec.split.seed,
        int(data.y[parts.validation].sum()),
        _rows_of(data.false_negative_costs, fit_rows),
    )
    return replace(winner, threshold=threshold)


def _evaluate(
    spec: UseCaseSpec,
    final: Any,
    winner: CandidateResult,
    data: ValidData,
    parts: Split,
) -> TestEvaluation:
    """Test metrics of the refitted winner, logged to the run."""
    evaluation = evaluate_test(
        final,
        data.X.iloc[parts.test],
        data.y[parts.test],
        data.classes,
        winner.threshold,
        spec.threshold,
        _rows_of(data.false_negative_costs, parts.test),
    )
    track.log_metrics(evaluation.metrics, prefix="test_")
    track.log_params({"winner": winner.name})
    return evaluation


def _submit_plots(
    spec: UseCaseSpec,
    final: Any,
    data: ValidData,
    parts: Split,
    evaluation: TestEvaluation,
    run_id: str,
) -> Any:
    """The plots and permutation importance of the test rows, drawn and logged to
    the run by the flow's task runner; the future gives the importance table."""
    return log_plots.submit(
        final,
        data.X.iloc[parts.test],
        data.y[parts.test],
        evaluation,
        spec.metric.primary,
        run_id,
        spec.split.seed,
    )


def _model_card(
    spec: UseCaseSpec,
    raw: RawData,
    data: ValidData,
    parts: Split,
    winner: CandidateResult,
    evaluation: TestEvaluation,
    importance: Any,
) -> ModelCard:
    return ModelCard(
        spec=spec,
        winner=winner.name,
        candidates=list(spec.candidates),
        source=redact_url(raw.source),
        fingerprint=raw.fingerprint,
        report=data.report,
        split_rows={
            "train": len(parts.train),
            "validation": len(parts.validation),
            "test": len(parts.test),
        },
        class_names=data.classes,
        positive_label=data.positive_label,
        test_metrics=evaluation.metrics,
        threshold=winner.threshold.value if winner.threshold else None,
        threshold_strategy=winner.threshold.strategy if winner.threshold else "arg-max",
        importance=importance,
        warnings=list(evaluation.notes),
        code_version=__version__,
    )


def _rows_of(values: np.ndarray | None, positions: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[positions]


def _training_rows(spec: UseCaseSpec, data: ValidData, parts: Split) -> TrainingRows:
    X_train = data.X.iloc[parts.train]
    hook = (
        load_callable(spec.hooks.features, spec.base_dir)
        if spec.hooks.features
        else None
    )
    cleaner = TabularCleaner().fit(_apply_features_hook(hook, X_train, spec))
    if cleaner.empty_columns_:
        logger.warning(
            "Dropping columns with no values in the training rows: %s",
            cleaner.empty_columns_,
        )
    return TrainingRows(
        X_train=X_train,
        y_train=data.y[parts.train],
        X_validation=data.X.iloc[parts.validation],
        y_validation=data.y[parts.validation],
        cleaner=cleaner,
        features_hook=hook,
        validation_fn_costs=_rows_of(data.false_negative_costs, parts.validation),
        class_names=list(data.classes),
    )


def _apply_features_hook(hook: Any, X: Any, spec: UseCaseSpec) -> Any:
    """The training rows through the features hook, which must give back a frame."""
    if hook is None:
        return X
    featured = call_for_frame(
        hook, X.copy(), who=f"hook {spec.hooks.features!r}", on=" on the training rows"
    )
    if len(featured) != len(X):
        raise DataError(
            f"hook {spec.hooks.features!r} returned {len(featured)} rows for "
            f"{len(X)}; a features hook must keep every row, in order"
        )
    return featured


def _gate_and_log_model(
    spec: UseCaseSpec,
    final: Any,
    data: ValidData,
    parts: Split,
    evaluation: TestEvaluation,
) -> tuple[GateDecision, Any]:
    """The gate's decision against the current champion on the same test rows, and
    the pipeline logged to the run; nothing is registered yet."""
    hooks = trusted_hook_names(spec)
    test_score = evaluation.metrics.get(spec.metric.primary, float("nan"))
    decision = decide_promotion(
        spec.model_name,
        spec.metric,
        test_score,
        data.X.iloc[parts.test],
        data.y[parts.test],
        hooks,
    )
    metadata = {
        "classes": data.classes,
        "positive_label": data.positive_label,
        "threshold": _threshold_value(evaluation),
        "usecase": spec.name,
    }
    model_info = log_pipeline(final, data.X.iloc[parts.train[:50]], hooks, metadata)
    return decision, model_info


def _register(
    spec: UseCaseSpec,
    data: ValidData,
    evaluation: TestEvaluation,
    card: ModelCard,
    decision: GateDecision,
    model_info: Any,
) -> tuple[RegisteredVersion, GateDecision]:
    primary = spec.metric.primary
    test_score = evaluation.metrics.get(primary, float("nan"))
    threshold = _threshold_value(evaluation)
    card.gate = decision
    log_card(card, model_info.model_id)
    tags = {
        "casework.usecase": spec.name,
        "casework.data_fingerprint": card.fingerprint,
        "casework.code_version": __version__,
        "casework.primary_metric": primary,
        f"casework.test_{primary}": f"{test_score:.6f}",
        "casework.classes": ",".join(data.classes),
    }
    tags[TEST_ROWS_TAG] = decision.test_rows
    # A multi-class model decides by arg-max: it has no threshold to store.
    if threshold is not None:
        tags[THRESHOLD_TAG] = f"{threshold:.6f}"
    version = register_version(
        spec.model_name,
        model_info,
        decision,
        tags,
        spec.description,
        version_description=card_summary(card),
    )
    logger.info("Gate: %s", decision.reason)
    return version, decision


def _threshold_value(evaluation: TestEvaluation) -> float | None:
    return evaluation.threshold.value if evaluation.threshold else None


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
    evaluation: TestEvaluation,
    version: RegisteredVersion | None,
    decision: GateDecision | None,
    run_id: str,
    experiment_id: str,
    fingerprint: str,
    data: ValidData,
    importance: Any,
) -> TrainSummary:
    from casework.settings import tracking_uri

    primary = spec.metric.primary
    table = [
        {
            "name": r.name,
            "validation_score": r.score(primary),
            "fit_seconds": r.fit_seconds,
            "threshold": r.threshold.value if r.threshold else None,
        }
        for r in results
    ]
    return TrainSummary(
        usecase=spec.name,
        primary_metric=primary,
        candidates=table,
        winner=winner.name,
        threshold=winner.threshold.value if winner.threshold else None,
        test_metrics={
            k: float(v) for k, v in evaluation.metrics.items() if np.isfinite(v)
        },
        model_name=version.name if version else None,
        version=version.version if version else None,
        aliases=list(version.aliases) if version else [],
        gate=asdict(decision) if decision else {},
        run_id=run_id,
        experiment_id=experiment_id,
        tracking_uri=redact_url(tracking_uri()),
        data_fingerprint=fingerprint,
        rows=len(data.y),
        notes=list(evaluation.notes),
        threshold_strategy=winner.threshold.strategy if winner.threshold else None,
        classes=list(data.classes),
        top_features=importance.head(5).to_dict(orient="records"),
    )


def _publish_artifact(summary: TrainSummary) -> None:
    create_markdown_artifact(
        markdown=summary_markdown(summary),
        key=f"train-{summary.usecase}".replace("_", "-"),
        description=f"Training summary of {summary.usecase}",
    )


def summary_markdown(summary: TrainSummary) -> str:
    """The Prefect artifact of a training run: candidates, winner, test figures, the
    gate's decision with both scores, and how to load the registered version."""
    sections = [
        _candidate_section(summary),
        _test_section(summary),
        _gate_section(summary),
        _load_section(summary),
        f"MLflow run `{summary.run_id}` (experiment {summary.experiment_id}) at "
        f"{summary.tracking_uri}; plots under `plots/`, the model card in "
        "`model_card.md`.",
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _candidate_section(summary: TrainSummary) -> str:
    metric = summary.primary_metric
    lines = [
        f"# {summary.usecase}: {len(summary.candidates)} candidates on "
        f"{summary.rows} rows",
        "",
        f"| candidate | validation {metric} | threshold | fit seconds |",
        "|---|---|---|---|",
    ]
    for row in summary.candidates:
        mark = " **(winner)**" if row["name"] == summary.winner else ""
        threshold = "-" if row["threshold"] is None else f"{row['threshold']:.4f}"
        lines.append(
            f"| {row['name']}{mark} | {row['validation_score']:.4f} | {threshold} "
            f"| {row['fit_seconds']:.1f} |"
        )
    return "\n".join(lines)


def _test_section(summary: TrainSummary) -> str:
    test = summary.test_metrics
    shown = [summary.primary_metric] + [
        k
        for k in ("roc_auc", "pr_auc", "macro_f1", "log_loss", "precision", "recall")
        if k != summary.primary_metric
    ]
    rule = (
        f"threshold {summary.threshold:.4f} ({summary.threshold_strategy})"
        if summary.threshold is not None
        else "the most probable class"
    )
    lines = [
        f"## Winner `{summary.winner}` on test rows (decides by {rule})",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {test[k]:.4f} |" for k in shown if k in test],
    ]
    if "expected_cost" in test:
        lines += [
            "",
            "| policy | expected cost on test rows |",
            "|---|---|",
            f"| model | {test['expected_cost']:,.2f} |",
            f"| flag nothing | {test['cost_flag_nothing']:,.2f} |",
            f"| flag everything | {test['cost_flag_everything']:,.2f} |",
        ]
    if summary.top_features:
        top = ", ".join(f"`{row['column']}`" for row in summary.top_features)
        lines += ["", f"Top input columns (permutation importance): {top}"]
    lines += [f"\n> **Warning:** {note}" for note in summary.notes]
    return "\n".join(lines)


def _gate_section(summary: TrainSummary) -> str:
    gate = summary.gate
    if not gate:
        return "## Not registered (run with registration off)"
    outcome = "promoted to champion" if gate["promote"] else "not promoted"
    champion = (
        f"{gate['champion_score']:.4f} (champion v{gate['champion_version']})"
        if gate.get("champion_score") is not None
        else "none (no champion to compare on these rows)"
    )
    return "\n".join(
        [
            f"## Gate: {outcome}",
            "",
            f"- challenger {gate['metric']}: {gate['challenger_score']:.4f}",
            f"- champion {gate['metric']}: {champion}",
            f"- why: {gate['reason']}",
        ]
    )


def _load_section(summary: TrainSummary) -> str:
    if not summary.version:
        return ""
    name = summary.model_name
    return "\n".join(
        [
            f"## Registered `{name}` v{summary.version} "
            f"(aliases: {', '.join(summary.aliases)})",
            "",
            "```python",
            "import mlflow",
            f'model = mlflow.pyfunc.load_model("models:/{name}/{summary.version}")',
            "probabilities = model.predict(raw_rows)  # one column per class",
            "```",
            "",
            f"or `casework.tasks.model_store.load_pipeline('models:/{name}@champion')` "
            f"for the scikit-learn pipeline; score with `casework score {summary.usecase}`.",
        ]
    )
