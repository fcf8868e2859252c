"""Logging a fitted pipeline as an MLflow model, and loading it back."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from casework.tasks.clean import TabularCleaner, build_model_pipeline
from casework.tasks.model_store import load_pipeline, log_pipeline

from .helpers import start_run_in


@pytest.fixture
def churn_pipeline(churn_sample):
    X = churn_sample.drop(columns=["customerID", "Churn"])
    y = (churn_sample["Churn"] == "Yes").astype(int).to_numpy()
    cleaner = TabularCleaner().fit(X)
    return build_model_pipeline(cleaner, LogisticRegression(max_iter=500)).fit(X, y), X


class TestLogPipeline:
    def test_pins_are_written_without_scanning_every_installed_package(
        self, casework_env, churn_pipeline, monkeypatch, tmp_path
    ):
        import importlib_metadata
        import mlflow
        from mlflow.utils import requirements_utils

        scans = []
        monkeypatch.setattr(
            importlib_metadata, "packages_distributions", lambda: scans.append(1) or {}
        )
        monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
        pipeline, X = churn_pipeline

        with start_run_in(tmp_path):
            info = log_pipeline(pipeline, X.head(20))

        local = Path(mlflow.artifacts.download_artifacts(info.model_uri))
        pins = (local / "requirements.txt").read_text().splitlines()
        assert f"scikit-learn=={version('scikit-learn')}" in pins
        assert f"mlflow=={mlflow.__version__}" in pins
        assert scans == []
        assert requirements_utils._MODULES_TO_PACKAGES is None
        reloaded = load_pipeline(info.model_uri)
        assert reloaded.predict_proba(X.head(5)).shape == (5, 2)

    def test_a_pin_the_environment_does_not_satisfy_is_still_reported(
        self, casework_env, churn_pipeline, monkeypatch, caplog, tmp_path
    ):
        from mlflow.utils import requirements_utils

        import casework.tasks.model_store as model_store

        monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
        monkeypatch.setattr(
            model_store, "_pip_requirements", lambda: ["scikit-learn==0.0.1"]
        )
        pipeline, X = churn_pipeline

        with start_run_in(tmp_path), caplog.at_level("WARNING"):
            log_pipeline(pipeline, X.head(20))

        assert "scikit-learn==0.0.1" in caplog.text
