"""Registering a logged model (tags, description and aliases, or nothing at all),
and the gate that decides on the champion alias."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from casework.errors import RegistryError
from casework.tasks.register import (
    TEST_ROWS_TAG,
    GateDecision,
    decide_promotion,
    digest_of_rows,
    register_version,
)
from casework.usecases.spec import MetricSpec

from .helpers import registered_versions, start_run_in

PROMOTE = GateDecision(True, "first version", "roc_auc", 0.9)


@pytest.fixture
def logged_model(casework_env, tmp_path):
    """A small fitted model logged to a fresh run, and a model name nobody used."""
    import mlflow

    X, y = _rows()
    model = LogisticRegression().fit(X, y)
    with start_run_in(tmp_path):
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops"
        )
    return info, f"register-{uuid.uuid4().hex[:8]}"


class TestRegisterVersion:
    def test_version_carries_tags_description_and_aliases(self, logged_model, capfd):
        info, name = logged_model

        version = register_version(
            name, info, PROMOTE, {"casework.usecase": "x"}, "a model", "the card"
        )

        assert version.aliases == ("challenger", "champion")
        (stored,) = registered_versions(name)
        assert stored.tags["casework.usecase"] == "x"
        assert stored.description == "the card"
        assert stored.run_id == info.run_id
        assert "already exists" not in capfd.readouterr().err

    def test_alias_refused_leaves_no_version_behind(self, logged_model, monkeypatch):
        from mlflow import MlflowClient

        info, name = logged_model

        def refuse(*args, **kwargs):
            raise RuntimeError("registry is read-only")

        monkeypatch.setattr(MlflowClient, "set_registered_model_alias", refuse)
        with pytest.raises(RegistryError, match="version removed"):
            register_version(name, info, PROMOTE, {})

        assert registered_versions(name) == []


def _rows(start: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    X = pd.DataFrame({"x": np.arange(start, start + 40, dtype=float)})
    return X, (X["x"] > start + 20).astype(int).to_numpy()


class TestGate:
    @pytest.fixture
    def champion(self, logged_model):
        """Version 1, champion, recorded with roc_auc 0.75 on the rows of _rows()."""
        info, name = logged_model
        tags = {
            "casework.test_roc_auc": "0.750000",
            TEST_ROWS_TAG: digest_of_rows(*_rows()),
        }
        register_version(name, info, PROMOTE, tags)
        return name

    def test_same_test_rows_reuse_the_champions_recorded_score(
        self, champion, monkeypatch
    ):
        import casework.tasks.model_store

        def not_expected(*args, **kwargs):
            raise AssertionError("the champion was loaded again")

        monkeypatch.setattr(casework.tasks.model_store, "load_pipeline", not_expected)

        decision = decide_promotion(champion, MetricSpec(), 0.8, *_rows())

        assert decision.champion_score == 0.75
        assert decision.promote is True

    def test_other_test_rows_score_the_champion_again(self, champion):
        decision = decide_promotion(champion, MetricSpec(), 0.8, *_rows(start=5))

        # The real model ranks these rows perfectly, unlike its recorded 0.75
        assert decision.champion_score == 1.0
        assert decision.promote is False
