"""Tests of the evaluation plots and the model card, on small real-shaped inputs."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from casework.tasks.card import ModelCard
from casework.tasks.plots import binary_figures, column_importance, multiclass_figures
from casework.tasks.validate import QualityReport
from casework.usecases import load_usecase


def _png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


class TestPlots:
    def test_binary_plots_render_the_four_figures(self):
        rng = np.random.default_rng(0)
        y = rng.integers(0, 2, 200)
        positive = np.clip(y * 0.6 + rng.uniform(0, 0.4, 200), 0, 1)
        figures = binary_figures(y, positive, 0.5, ["legit", "fraud"])
        assert set(figures) == {
            "roc_curve.png",
            "pr_curve.png",
            "confusion_matrix.png",
            "calibration_curve.png",
        }
        assert all(_png_bytes(f).startswith(b"\x89PNG") for f in figures.values())

    def test_multiclass_plots_survive_a_class_absent_from_the_test_rows(self):
        rng = np.random.default_rng(1)
        y = rng.integers(0, 2, 90)  # class 2 never occurs
        proba = rng.dirichlet([1, 1, 1], 90)
        figures = multiclass_figures(y, proba, ["a", "b", "c"])
        assert "roc_curve_per_class.png" in figures
        assert all(_png_bytes(f).startswith(b"\x89PNG") for f in figures.values())


class TestColumnImportance:
    @pytest.mark.parametrize("scoring", ["roc_auc", "neg_log_loss", "f1"])
    def test_same_as_scoring_each_shuffle_of_the_whole_pipeline(
        self, churn_sample, scoring
    ):
        from sklearn.metrics import get_scorer

        pipeline, X, y = _churn_pipeline(churn_sample)

        table = column_importance(
            pipeline, X, y, scoring, n_repeats=3, max_rows=500, seed=3
        )

        # One by one, as the docstring draws them: rows, then column by column
        # and repeat by repeat, a shuffle; scikit-learn's scorer on raw rows
        score = get_scorer(scoring)
        rng = np.random.default_rng(3)
        drawn = rng.choice(len(X), size=500, replace=False)
        rows, labels = X.iloc[drawn].reset_index(drop=True), y[drawn]
        baseline = score(pipeline, rows, labels)
        expected = {}
        for column in rows.columns:
            drops = []
            for _ in range(3):
                shuffled = rows.copy()
                order = rng.permutation(len(rows))
                shuffled[column] = rows[column].to_numpy()[order]
                drops.append(baseline - score(pipeline, shuffled, labels))
            expected[column] = np.mean(drops)
        got = dict(zip(table["column"], table["importance_mean"], strict=True))
        assert set(got) == set(expected)
        assert all(np.isclose(got[c], expected[c]) for c in expected)
        assert table["column"].iloc[0] in {"Contract", "tenure"}

    def test_a_column_dropped_as_empty_scores_zero(self, churn_sample):
        frame = churn_sample.assign(Notes=np.nan)
        pipeline, X, y = _churn_pipeline(frame)

        table = column_importance(pipeline, X, y, "roc_auc", n_repeats=2)

        assert table.set_index("column").loc["Notes", "importance_mean"] == 0.0
        assert len(table) == X.shape[1]


def _churn_pipeline(frame: pd.DataFrame):
    from casework.tasks.candidates import make_candidate
    from casework.tasks.clean import TabularCleaner, build_model_pipeline

    X = frame.drop(columns=["customerID", "Churn"])
    y = (frame["Churn"] == "Yes").astype(int).to_numpy()
    cleaner = TabularCleaner().fit(X)
    pipeline = build_model_pipeline(cleaner, make_candidate("logistic_regression", 0))
    return pipeline.fit(X, y), X, y


class TestModelCard:
    def _card(self, **changes) -> ModelCard:
        report = QualityReport(569, 31, {}, [], [], 0, 0, 0, {"benign": 357})
        facts = dict(
            spec=load_usecase("disease"),
            winner="logistic_regression",
            candidates=["logistic_regression"],
            source="python:casework.usecases.disease.data:load_frame",
            fingerprint="abc123",
            report=report,
            split_rows={"train": 341, "validation": 114, "test": 114},
            class_names=["benign", "malignant"],
            positive_label="malignant",
            test_metrics={"roc_auc": 0.99, "recall": 0.9, "precision": 0.8},
            threshold=0.31,
            threshold_strategy="min_recall",
            importance=pd.DataFrame(
                {
                    "column": ["worst area"],
                    "importance_mean": [0.1],
                    "importance_std": [0.0],
                }
            ),
        )
        facts.update(changes)
        return ModelCard(**facts)

    def test_the_card_states_use_data_metrics_features_and_limits(self):
        text = self._card().to_markdown()
        assert "## Intended use" in text and "never a diagnosis" in text
        assert "fingerprint: `abc123`" in text
        assert "threshold **0.3100**" in text
        assert "| worst area |" in text
        assert "## Known limits" in text

    def test_an_unreached_minimum_recall_is_flagged_as_a_warning(self):
        note = "no threshold reaches recall 0.950 on validation rows"
        text = self._card(warnings=[note]).to_markdown()
        assert f"> **Warning:** {note}" in text
        assert text.index("## Warnings") < text.index("## Metrics on test rows")
