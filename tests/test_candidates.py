"""Candidate models, and the torch MLP's fit, predict and safe saving."""

from __future__ import annotations

import numpy as np
import pandas as pd
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

    def test_fits_on_its_own_thread_count_and_restores_torch_s(self):
        import torch

        before = torch.get_num_threads()
        seen = []
        model = TorchMLPClassifier(max_epochs=2, threads=1)
        net_fit = model._skorch_net

        def spying_net(n_classes):
            net = net_fit(n_classes)
            net.fit = _recording(net.fit, lambda: seen.append(torch.get_num_threads()))
            return net

        model._skorch_net = spying_net
        model.fit(*_blobs(2))

        assert seen == [1]
        assert torch.get_num_threads() == before

    def test_prints_no_epoch_table_inside_a_flow_that_logs_prints(
        self, casework_env, capsys
    ):
        import skorch  # noqa: F401 - imported outside the flow, as the CLI does
        from prefect import flow

        @flow(log_prints=True)
        def fit_in_a_flow():
            TorchMLPClassifier(max_epochs=3).fit(*_blobs(2))

        fit_in_a_flow()

        printed = capsys.readouterr()
        assert "train_loss" not in printed.out + printed.err


class TestTrainCandidate:
    def test_each_candidate_fits_with_one_openmp_thread(self, monkeypatch):
        from threadpoolctl import threadpool_info

        from casework.tasks import candidates
        from casework.tasks.clean import TabularCleaner
        from casework.tasks.train import TrainingRows, train_candidate
        from casework.usecases.spec import ThresholdSpec

        seen = []

        class Recording(candidates.DummyClassifier):
            def fit(self, X, y):
                seen.extend(
                    pool["num_threads"]
                    for pool in threadpool_info()
                    if pool["user_api"] == "openmp"
                )
                return super().fit(X, y)

        monkeypatch.setitem(candidates.CANDIDATES, "baseline", lambda seed: Recording())
        X, y = _blobs(2)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        rows = TrainingRows(
            frame, y, frame, y, TabularCleaner().fit(frame), class_names=["0", "1"]
        )

        train_candidate.fn("baseline", rows, ThresholdSpec(), seed=0)

        assert seen and set(seen) == {1}


def _recording(function, record):
    def wrapper(*args, **kwargs):
        record()
        return function(*args, **kwargs)

    return wrapper


class TestCheckCandidates:
    def test_unknown_candidate_suggests_the_close_name(self):
        with pytest.raises(
            SpecError, match="unknown candidate 'logistic_regresion'; did you mean"
        ):
            check_candidates(["logistic_regresion"], "demo")

    @pytest.mark.parametrize(
        ("name", "settings", "expected"),
        [
            (
                "logistic_regression",
                {"max_iter": -5},
                "candidate_params.logistic_regression.max_iter: The 'max_iter' "
                "parameter of LogisticRegression must be an int in the range "
                "[0, inf). Got -5 instead.",
            ),
            (
                "hist_gradient_boosting",
                {"learning_rate": "fast"},
                "candidate_params.hist_gradient_boosting.learning_rate: The "
                "'learning_rate' parameter of HistGradientBoostingClassifier must be "
                "a float in the range (0.0, inf). Got 'fast' instead.",
            ),
            (
                "mlp",
                {"max_epochs": 10, "batch_size": 0},
                "candidate_params.mlp.batch_size: The 'batch_size' parameter of "
                "TorchMLPClassifier must be an int in the range [1, inf). Got 0 "
                "instead.",
            ),
        ],
        ids=["negative-int", "text-for-a-float", "mlp-zero-batch"],
    )
    def test_a_value_the_estimator_refuses_names_use_case_parameter_and_value(
        self, name, settings, expected
    ):
        with pytest.raises(SpecError) as raised:
            check_candidates([name], "demo", {name: settings})
        assert str(raised.value) == f"demo: {expected}"

    def test_a_number_yaml_reads_as_text_says_how_to_write_it(self):
        import yaml

        settings = yaml.safe_load("learning_rate: 1e-3")

        with pytest.raises(SpecError, match=r"write it as 0\.001\)$"):
            check_candidates(
                ["hist_gradient_boosting"], "demo", {"hist_gradient_boosting": settings}
            )

    def test_values_the_estimators_accept_pass(self):
        check_candidates(
            ["mlp"],
            "demo",
            {
                "mlp": {"hidden_units": 8, "learning_rate": 0.01, "weight_decay": 0},
                "random_forest": {"n_estimators": 50, "max_depth": None},
            },
        )

    def test_the_mlp_refuses_a_bad_value_when_fitted_directly(self):
        X, y = _blobs(2)
        with pytest.raises(ValueError, match="'threads' parameter of TorchMLP"):
            TorchMLPClassifier(threads=0).fit(X, y)
