"""Tracking: the MLflow experiment of a use case, the parent run of a flow run, and a
nested run per candidate.

Candidate runs are written through ``MlflowClient`` with explicit run ids, because
candidates train in worker threads (or Dask workers) where MLflow's active-run stack
of the flow's thread is not visible.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pandas as pd

from casework.errors import TrackingError, first_line
from casework.settings import artifact_location, tracking_uri

__all__ = [
    "connect",
    "log_candidate_run",
    "log_dataset",
    "log_dict",
    "log_metrics",
    "log_params",
    "open_store_early",
]

logger = logging.getLogger(__name__)


def open_store_early() -> threading.Thread:
    """Start opening the MLflow tracking store in a thread, and return the thread.

    Opening a SQLite or database store imports MLflow's SQLAlchemy models and checks
    the schema: 0.5-0.9 s of the interpreter. MLflow keeps the store by URI, so a
    store opened just before a flow run starts is ready when the flow connects;
    meanwhile the command's own thread mostly waits on Prefect's API to create the
    flow run. A failure is left for :func:`connect` to report.
    """

    uri = tracking_uri()  # read here, as the caller's settings stand now

    def open_store() -> None:
        from mlflow import MlflowClient

        try:
            MlflowClient(uri)
        except Exception as exc:  # connect() reports it in one line, in the flow
            logger.debug("Opening the tracking store early failed: %s", exc)

    thread = threading.Thread(
        target=open_store, name="open-tracking-store", daemon=True
    )
    thread.start()
    return thread


def connect(usecase: str) -> str:
    """Point MLflow at the tracking store and return the use case's experiment id.

    Raises:
        TrackingError: the tracking server cannot be reached.
    """
    import mlflow

    # NOTE: loaded here, before any task runs beside the flow's thread. Importing it
    # emits warnings (the "AnyType" one, in colour) that MLflow mutes by swapping
    # warnings.showwarning for the import; a warnings.catch_warnings() block ending
    # in another thread meanwhile (scikit-learn opens many) swaps the unmuted one
    # back, and the warnings reach the console.
    import mlflow.pyfunc
    from mlflow import MlflowClient

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    try:
        experiment = client.get_experiment_by_name(usecase)
        if experiment is not None:
            return experiment.experiment_id
        return client.create_experiment(
            usecase, artifact_location=artifact_location(usecase)
        )
    except Exception as exc:
        raise TrackingError(
            f"MLflow tracking at {_safe(uri)} cannot be reached or used: {first_line(exc)}"
        ) from None


def log_candidate_run(
    experiment_id: str,
    parent_run_id: str,
    name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
) -> str:
    """A nested run under the flow's parent run for one candidate; returns its id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    client = MlflowClient()
    run = client.create_run(
        experiment_id,
        run_name=name,
        tags={MLFLOW_PARENT_RUN_ID: parent_run_id, "casework.candidate": name},
    )
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(f"validation_{k}", float(v), 0, 0) for k, v in metrics.items()],
        params=[Param(k, _param_text(v)) for k, v in params.items()],
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def log_params(params: dict[str, Any]) -> None:
    """Log parameters to the active run, cut to MLflow's length limit."""
    import mlflow

    mlflow.log_params({k: _param_text(v) for k, v in params.items()})


def log_metrics(metrics: dict[str, float], prefix: str = "") -> None:
    """Log finite numeric metrics to the active run."""
    import mlflow

    finite = {f"{prefix}{k}": float(v) for k, v in metrics.items() if pd.notna(v)}
    mlflow.log_metrics(finite)


def log_dict(data: Any, artifact_file: str) -> None:
    """Log a JSON-able object to the active run as ``artifact_file``."""
    import mlflow

    # Any URL in it (a SQL source of the spec, say) is recorded without its password.
    mlflow.log_text(_safe(json.dumps(data, indent=2, default=str)), artifact_file)


def log_dataset(frame: pd.DataFrame, name: str, source: str, fingerprint: str) -> None:
    """Record the training data as an MLflow dataset input of the active run: its
    name, fingerprint (as digest), schema, row count and source.

    The schema is read off the column types. MLflow's own ``from_pandas`` inspects
    every cell of every text column for it, about a second of the flow's thread on
    7,000 rows, while the candidates wait for the same interpreter.
    """
    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    schema = Schema(
        [
            ColSpec(
                _mlflow_type(frame[column]), str(column), required=_full(frame[column])
            )
            for column in frame.columns
        ]
    )
    dataset = MetaDataset(
        CodeDatasetSource({}), name=name, digest=fingerprint, schema=schema
    )
    mlflow.log_input(
        dataset,
        context="training",
        tags={"source": _safe(source), "rows": str(len(frame))},
    )


def _mlflow_type(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_integer_dtype(column):
        return "long"
    if pd.api.types.is_float_dtype(column):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "datetime"
    return "string"


def _full(column: pd.Series) -> bool:
    return not bool(column.isna().any())


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return _safe(text)[:500]


def _safe(uri: str) -> str:
    """A URI with any password replaced by ``***``."""
    from casework.tasks.redact import redact_url

    return redact_url(uri)
