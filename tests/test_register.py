"""Registering a logged model: tags, description and aliases, or nothing at all."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from casework.errors import RegistryError
from casework.tasks.register import GateDecision, register_version

from .helpers import registered_versions

PROMOTE = GateDecision(True, "first version", "roc_auc", 0.9)


@pytest.fixture
def logged_model(casework_env):
    """A small fitted model logged to a fresh run, and a model name nobody used."""
    import mlflow

    X = np.arange(40, dtype=float).reshape(-1, 1)
    model = LogisticRegression().fit(X, (X[:, 0] > 20).astype(int))
    with mlflow.start_run():
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
