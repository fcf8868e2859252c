"""Tests of casework.tasks.score: registry look-up and schema enforcement, on a churn
model trained on the real CSV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from casework.errors import DataError, RegistryError, SchemaError
from casework.tasks.score import ScoringModel, resolve_model, score_frame

SCORED_AT = pd.Timestamp("2026-01-01", tz="UTC")


@pytest.fixture(scope="module")
def model(churn_model) -> ScoringModel:
    return resolve_model("churn", alias="champion")


@pytest.fixture
def rows(churn_frame) -> pd.DataFrame:
    return churn_frame.drop(columns=["Churn"]).head(500).copy()


def _scores(frame: pd.DataFrame, model: ScoringModel) -> np.ndarray:
    output, _ = score_frame(frame, model, ["customerID"], SCORED_AT)
    return output["score"].to_numpy()


class TestResolveModel:
    def test_the_champion_comes_with_its_threshold_and_classes(
        self, model, churn_model
    ):
        assert model.version == churn_model["version"]
        assert model.threshold == pytest.approx(churn_model["threshold"], abs=1e-6)
        assert model.classes == ["No", "Yes"]
        assert "TotalCharges" in model.numeric_columns

    def test_an_unknown_alias_is_one_clear_error(self, churn_model):
        with pytest.raises(RegistryError, match="has no alias 'nope'"):
            resolve_model("churn", alias="nope")

    def test_an_unknown_version_is_one_clear_error(self, churn_model):
        with pytest.raises(RegistryError, match="has no version 999"):
            resolve_model("churn", version="999")


class TestScoreFrame:
    def test_scores_are_the_pipelines_probabilities_and_labels_follow_the_threshold(
        self, model, rows
    ):
        output, stats = score_frame(rows, model, ["customerID"], SCORED_AT)
        expected = model.pipeline.predict_proba(rows.drop(columns=["customerID"]))[:, 1]
        np.testing.assert_allclose(output["score"], expected)
        assert (
            output["label"] == np.where(expected >= model.threshold, "Yes", "No")
        ).all()
        assert list(output.columns) == [
            "customerID",
            "score",
            "label",
            "model_name",
            "model_version",
            "scored_at",
        ]
        assert stats.rows == 500 and sum(stats.labels.values()) == 500

    def test_missing_columns_are_named_in_one_error(self, model, rows):
        with pytest.raises(
            SchemaError, match=r"missing 2 column\(s\).*\['tenure', 'Contract'\]"
        ):
            score_frame(rows.drop(columns=["Contract", "tenure"]), model, [], SCORED_AT)

    def test_a_missing_id_column_is_named(self, model, rows):
        with pytest.raises(SchemaError, match=r"\['customerID'\]"):
            score_frame(
                rows.drop(columns=["customerID"]), model, ["customerID"], SCORED_AT
            )

    def test_extra_columns_are_ignored_and_order_does_not_matter(self, model, rows):
        shuffled = rows[list(reversed(rows.columns))].assign(Churn="Yes", note="x")
        np.testing.assert_allclose(_scores(shuffled, model), _scores(rows, model))

    def test_an_unseen_category_is_scored_and_counted(self, model, rows):
        rows.loc[rows.index[:7], "PaymentMethod"] = "Cryptocurrency"
        output, stats = score_frame(rows, model, ["customerID"], SCORED_AT)
        assert np.isfinite(output["score"]).all()
        assert dict(stats.unseen_categories) == {"PaymentMethod": 7}

    def test_blanks_in_an_integer_column_are_scored(self, model, rows):
        assert pd.api.types.is_integer_dtype(rows["tenure"])
        rows["tenure"] = rows["tenure"].astype(object)
        rows.loc[rows.index[:5], "tenure"] = None
        rows.loc[rows.index[5:8], "tenure"] = " "
        output, stats = score_frame(rows, model, ["customerID"], SCORED_AT)
        assert np.isfinite(output["score"]).all()
        assert not stats.unparsable_numbers

    def test_numbers_stored_as_text_are_coerced_as_in_training(self, model, rows):
        as_text = rows.assign(
            MonthlyCharges=rows["MonthlyCharges"].map(lambda v: f" {v} "),
            SeniorCitizen=rows["SeniorCitizen"].astype(str),
        )
        np.testing.assert_allclose(_scores(as_text, model), _scores(rows, model))

    def test_text_that_is_not_a_number_is_scored_as_missing_and_counted(
        self, model, rows
    ):
        rows["MonthlyCharges"] = rows["MonthlyCharges"].astype(object)
        rows.loc[rows.index[:3], "MonthlyCharges"] = "n/a"
        output, stats = score_frame(rows, model, ["customerID"], SCORED_AT)
        assert np.isfinite(output["score"]).all()
        assert dict(stats.unparsable_numbers) == {"MonthlyCharges": 3}


def _needs_tenure_years(frame: pd.DataFrame) -> pd.DataFrame:
    """A features hook written for rows that carry a column these rows lack."""
    return frame.assign(tenure=frame["tenure_years"] * 12)


class TestFeaturesHookAtScoring:
    def test_a_hook_failing_on_the_rows_is_one_line_naming_it(self, model, rows):
        from dataclasses import replace

        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer

        hooked = Pipeline(
            [
                ("features", FunctionTransformer(_needs_tenure_years)),
                *model.pipeline.steps,
            ]
        )

        with pytest.raises(DataError) as raised:
            score_frame(
                rows, replace(model, pipeline=hooked), ["customerID"], SCORED_AT
            )

        message = str(raised.value)
        assert message.startswith("rows to score: the use case's features hook ")
        assert "_needs_tenure_years failed: KeyError: 'tenure_years'" in message
        assert "\n" not in message
