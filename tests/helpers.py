"""Helpers for tests that write use cases and read the registry."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd


def write_usecase(
    folder: Path, name: str, frame: pd.DataFrame | None, **fields: object
) -> Path:
    """Write a churn-like spec (and its CSV) into ``folder``; returns the spec path."""
    import yaml

    csv = folder / f"{name}.csv"
    if frame is not None:
        frame.to_csv(csv, index=False)
    spec = {
        "name": name,
        "source": {"kind": "csv", "path": csv.name},
        "target": {"column": "Churn", "positive": "Yes"},
        "id_columns": ["customerID"],
        "candidates": ["logistic_regression"],
        "threshold": {"strategy": "max_f1"},
    }
    spec.update(fields)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def start_run_in(folder: Path) -> Any:
    """An MLflow run of a new experiment whose artifacts go under ``folder``; the
    default experiment's would go to ./mlruns in the working folder."""
    import uuid

    import mlflow

    experiment = mlflow.create_experiment(
        f"test-{uuid.uuid4().hex[:8]}",
        artifact_location=(folder / "artifacts").as_uri(),
    )
    return mlflow.start_run(experiment_id=experiment)


def registered_versions(name: str) -> list[object]:
    """Every registered version of ``name`` in the current tracking store."""
    from mlflow import MlflowClient

    return list(
        MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).search_model_versions(
            f"name = '{name}'"
        )
    )


CASEWORK = str(Path(sys.executable).parent / "casework")


def run_casework(
    *args: str, home: Path, timeout: float = 120, **env_changes: str
) -> subprocess.CompletedProcess[str]:
    """Run the ``casework`` console script with a private home and no servers, as a
    user at a shell would (Prefect's console output included)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "MLFLOW_", "CASEWORK_"))
    }
    env.update(CASEWORK_HOME=str(home), **env_changes)
    return subprocess.run(
        [CASEWORK, *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until(condition: Callable[[], Any], seconds: float) -> None:
    """Poll ``condition`` until it is true; fail the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not true after {seconds} s"
        time.sleep(0.1)
