"""Helpers for tests that write use cases and read the registry."""

from __future__ import annotations

import os
from pathlib import Path

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


def registered_versions(name: str) -> list[object]:
    """Every registered version of ``name`` in the current tracking store."""
    from mlflow import MlflowClient

    return list(
        MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).search_model_versions(
            f"name = '{name}'"
        )
    )
