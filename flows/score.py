"""The scoring flow: resolve a registered model version → read rows in chunks → hold
them to the version's schema → score → write, all in one pass over the input.

Memory is bounded by the chunk size: each chunk is read, scored and handed to the
writer before the next is read. The output is replaced atomically (files) or in one
transaction (SQL tables), so a failed run leaves it as it was. The run is recorded as
an MLflow run in the use case's experiment and as a Prefect markdown artifact.

NOTE: the flow's parameters are flat and typed for the Prefect UI form, and must
stay in step with the options of ``casework score``. SQL URLs given here should
carry their password as a ``${VAR}`` placeholder: flow parameters are stored by
Prefect (the CLI moves a literal password into an environment variable for you).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from casework.errors import DataError
from casework.tasks import track
from casework.tasks.model_store import trusted_hook_names
from casework.tasks.score import ScoreStats, ScoringModel, resolve_model, score_frame
from casework.tasks.score_io import (
    Endpoint,
    input_endpoint,
    output_endpoint,
    read_chunks,
    require_apart,
    write_chunks,
)
from casework.usecases import load_usecase
from casework.usecases.discovery import usecase_label
from casework.usecases.spec import UseCaseSpec

__all__ = ["ScoreSummary", "decision_rule", "score"]

logger = logging.getLogger(__name__)


@dataclass
class ScoreSummary:
    """What one scoring run did, for the CLI, MLflow and the Prefect artifact."""

    usecase: str
    model_name: str
    model_version: str
    threshold: float | None  # None: the label is the most probable class
    input: str
    output: str
    mode: str
    rows: int
    seconds: float
    rows_per_second: float
    scored_at: str
    labels: dict[str, int] = field(default_factory=dict)
    unseen_categories: dict[str, int] = field(default_factory=dict)
    unparsable_numbers: dict[str, int] = field(default_factory=dict)
    run_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run_name() -> str:
    """``score-<use case>``, also when the use case is given as a path."""
    from prefect.runtime import flow_run

    return f"score-{usecase_label(flow_run.parameters['usecase'])}"


@flow(name="score", flow_run_name=_run_name, log_prints=True)
def score(
    usecase: str = "churn",
    input: str = "",
    input_table: str = "",
    input_query: str = "",
    output: str = "",
    output_table: str = "",
    mode: Literal["append", "replace"] | None = None,
    alias: str = "",
    version: str = "",
    chunk_rows: int = 0,
) -> dict[str, Any]:
    """Score rows with a registered model version and write one row per input row.

    Args:
        usecase: a built-in or installed use-case name, or the path to a usecase.yaml.
        input: rows to score: a .csv/.parquet path or a SQL URL; empty takes the
            spec's ``scoring.input``.
        input_table: with a SQL ``input``, the table to read (``schema.table`` allowed).
        input_query: with a SQL ``input``, a query to read instead of a table.
        output: where scores go: a .csv/.parquet path or a SQL URL; empty takes the
            spec's ``scoring.output``.
        output_table: with a SQL ``output``, the table to write.
        mode: for a SQL output, ``append`` rows or ``replace`` the table; empty
            takes the spec's ``scoring.output.mode``, else ``append``.
        alias: the registry alias to score with; empty takes the spec's
            ``scoring.alias`` (default ``champion``).
        version: a model version number to score with instead of an alias.
        chunk_rows: rows per chunk; 0 takes the spec's ``scoring.chunk_rows``
            (default 50,000).
    """
    spec = load_usecase(usecase)
    source = input_endpoint(spec, input, input_table, input_query)
    sink = output_endpoint(spec, output, output_table, mode)
    require_apart(source, sink)
    rows_per_chunk = chunk_rows or spec.scoring.chunk_rows
    experiment_id = track.connect(spec.name)

    model = load_model(
        spec.model_name,
        alias or spec.scoring.alias,
        version or None,
        trusted_hook_names(spec),
    )

    import mlflow

    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"score-{spec.name}",
        tags={"casework.kind": "score"},
    ) as run:
        # Before any row is written: whether the output file exists yet
        mode = write_mode(sink)
        track.log_params(_run_params(spec, model, source, sink, mode, rows_per_chunk))
        summary = score_rows(model, source, sink, spec.id_columns, rows_per_chunk, mode)
        summary.usecase, summary.run_id = spec.name, run.info.run_id
        track.log_metrics(_run_metrics(summary))
        track.log_dict(summary.as_dict(), "score_summary.json")
    _publish_artifact(summary)
    return summary.as_dict()


@task(name="load-model", cache_policy=NO_CACHE)
def load_model(
    model_name: str, alias: str, version: str | None, trusted: tuple[str, ...]
) -> ScoringModel:
    """The registered version to score with, loaded and checked."""
    return resolve_model(model_name, alias, version, trusted)


@task(name="score-rows", cache_policy=NO_CACHE)
def score_rows(
    model: ScoringModel,
    source: Endpoint,
    sink: Endpoint,
    id_columns: list[str],
    chunk_rows: int,
    mode: str,
) -> ScoreSummary:
    """Read, score and write chunk by chunk; the output changes only on success.
    ``mode`` is how the output is written, as :func:`write_mode` says."""
    started = time.perf_counter()
    scored_at = pd.Timestamp.now(tz="UTC")
    stats = ScoreStats()
    columns = [*dict.fromkeys([*id_columns, *model.input_columns])]
    text_columns = [
        *id_columns,
        *[c for c in model.input_columns if c not in model.numeric_columns],
    ]
    chunks = read_chunks(source, columns, text_columns, chunk_rows)

    def scored() -> Iterator[pd.DataFrame]:
        for chunk in chunks:
            if chunk.empty:  # a file with a header and no rows reads as one
                continue
            frame, chunk_stats = score_frame(
                chunk, model, id_columns, scored_at, source.describe()
            )
            stats.add(chunk_stats)
            logger.debug("Scored %d rows so far", stats.rows)
            yield frame
        if stats.rows == 0:
            # Raised inside the writer's loop, so the output is left untouched.
            raise DataError(f"{source.describe()}: no rows to score")

    write_chunks(scored(), sink)
    seconds = time.perf_counter() - started
    logger.info(
        "Scored %s with %s in %.1f s (%.0f rows/s) into %s",
        row_count(stats.rows),
        model.uri,
        seconds,
        stats.rows / seconds if seconds else 0.0,
        sink.describe(),
    )
    _warn_about(stats)
    counts = stats.as_dict()
    return ScoreSummary(
        usecase="",
        model_name=model.name,
        model_version=model.version,
        threshold=model.threshold if model.is_binary else None,
        input=source.describe(),
        output=sink.describe(),
        mode=mode,
        rows=stats.rows,
        seconds=round(seconds, 3),
        rows_per_second=round(stats.rows / seconds, 1) if seconds else 0.0,
        scored_at=scored_at.isoformat(),
        labels=counts["labels"],
        unseen_categories=counts["unseen_categories"],
        unparsable_numbers=counts["unparsable_numbers"],
    )


def write_mode(sink: Endpoint) -> str:
    """How the output is written: a SQL table's append or replace; a file is
    replaced when it exists, else created."""
    if sink.kind == "sql":
        return sink.mode
    return "replace" if sink.path is not None and sink.path.exists() else "create"


def _warn_about(stats: ScoreStats) -> None:
    if stats.unseen_categories:
        logger.warning(
            "Categories never seen in training were scored (the encoder ignores them): "
            "%s rows per column",
            dict(stats.unseen_categories),
        )
    if stats.unparsable_numbers:
        logger.warning(
            "Cells that are not numbers were scored as missing: %s rows per column",
            dict(stats.unparsable_numbers),
        )


def _run_params(
    spec: UseCaseSpec,
    model: ScoringModel,
    source: Endpoint,
    sink: Endpoint,
    mode: str,
    chunk_rows: int,
) -> dict[str, Any]:
    return {
        "usecase": spec.name,
        "model_name": model.name,
        "model_version": model.version,
        "threshold": model.threshold if model.is_binary else None,
        "input": source.describe(),
        "output": sink.describe(),
        "mode": mode,
        "chunk_rows": chunk_rows,
    }


def _run_metrics(summary: ScoreSummary) -> dict[str, float]:
    metrics = {
        "rows_scored": float(summary.rows),
        "seconds": summary.seconds,
        "rows_per_second": summary.rows_per_second,
        "unseen_category_rows": float(sum(summary.unseen_categories.values())),
        "unparsable_number_cells": float(sum(summary.unparsable_numbers.values())),
    }
    for column, count in summary.unseen_categories.items():
        metrics[f"unseen_{_metric_name(column)}"] = float(count)
    return metrics


def _metric_name(text: str) -> str:
    """``text`` reduced to the characters MLflow accepts in a metric name."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", text)


def decision_rule(threshold: float | None) -> str:
    """How labels are given: at a threshold, or as the most probable class."""
    if threshold is None:
        return "label: the most probable class"
    return f"threshold {threshold:.4f}"


def written_as(mode: str) -> str:
    """A write mode as the summary says it: ``new file``, ``replaced``, ``append``."""
    return {"create": "new file", "replace": "replaced"}.get(mode, mode)


def row_count(rows: int) -> str:
    """``1 row``, ``7,043 rows``."""
    return f"{rows:,} row" if rows == 1 else f"{rows:,} rows"


def _publish_artifact(summary: ScoreSummary) -> None:
    lines = [
        f"# {summary.usecase}: scored {row_count(summary.rows)}",
        "",
        f"Model **{summary.model_name} v{summary.model_version}** "
        f"({decision_rule(summary.threshold)}), "
        f"{summary.rows_per_second:,.0f} rows/s.",
        "",
        f"- input: `{summary.input}`",
        f"- output: `{summary.output}` ({written_as(summary.mode)})",
        "- labels: "
        + ", ".join(f"{label}: {n:,}" for label, n in summary.labels.items()),
        "- categories never seen in training: "
        + (_counts(summary.unseen_categories) or "none"),
        "- cells that are not numbers: "
        + (_counts(summary.unparsable_numbers) or "none"),
        "",
        f"MLflow run `{summary.run_id}`.",
    ]
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=f"score-{summary.usecase}".replace("_", "-"),
        description=f"Scoring summary of {summary.usecase}",
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{column}: {n:,}" for column, n in counts.items())
