"""Candidate models, and the torch MLP's fit, predict and safe saving."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io

from casework.errors import SpecError
from casework.tasks.candidates import TorchMLPClassifier, check_candidates


def _blobs(n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=600)
    X = rng.normal(size=(600, 6)) + y[:, None] * 3.0
    return X, y


class TestTorchMLPClassifier:
    @pytest.mark.parametrize("n_classes", [2, 3], ids=["binary", "multiclass"])
    def test_learns_separable_classes(self, n_classes):
        X, y = _blobs(n_classes)
        model = TorchMLPClassifier(max_epochs=60).fit(X, y)
        proba = model.predict_proba(X)
        assert proba.shape == (600, n_classes)
        assert np.allclose(proba.sum(axis=1), 1.0)
        assert (model.predict(X) == y).mean() > 0.9

    def test_saved_with_skops_predicts_the_same_after_loading(self, tmp_path):
        X, y = _blobs(2)
        model = TorchMLPClassifier(max_epochs=5).fit(X, y)
        path = tmp_path / "mlp.skops"
        skops.io.dump(model, path)
        loaded = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
        assert np.allclose(loaded.predict_proba(X), model.predict_proba(X))


class TestCheckCandidates:
    def test_unknown_candidate_suggests_the_close_name(self):
        with pytest.raises(
            SpecError, match="unknown candidate 'logistic_regresion'; did you mean"
        ):
            check_candidates(["logistic_regresion"], "demo")
