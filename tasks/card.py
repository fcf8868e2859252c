"""The model card: one markdown page, logged with the model, that tells a reviewer
what the model is for, what data it saw, how it did at its threshold, what it looks
at, and where it should not be trusted."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from casework.tasks.register import GateDecision
from casework.tasks.validate import QualityReport
from casework.usecases.spec import UseCaseSpec

__all__ = ["CARD_FILE", "ModelCard", "card_summary", "log_card"]

logger = logging.getLogger(__name__)

CARD_FILE = "model_card.md"

# The order metrics are listed in; anything else follows alphabetically.
_HEADLINE = (
    "roc_auc",
    "pr_auc",
    "macro_f1",
    "roc_auc_ovr",
    "log_loss",
    "brier",
    "f1",
    "precision",
    "recall",
    "accuracy",
)
_COUNTS = ("true_positives", "false_positives", "true_negatives", "false_negatives")
_COSTS = ("expected_cost", "cost_flag_nothing", "cost_flag_everything", "cost_saving")


@dataclass
class ModelCard:
    """The facts a model card states, gathered by the training flow."""

    spec: UseCaseSpec
    winner: str
    candidates: list[str]
    source: str
    fingerprint: str
    report: QualityReport
    split_rows: dict[str, int]
    class_names: list[str]
    positive_label: str | None
    test_metrics: dict[str, float]
    threshold: float | None
    threshold_strategy: str
    importance: pd.DataFrame
    gate: GateDecision | None = None
    warnings: list[str] = field(default_factory=list)
    code_version: str = ""

    def to_markdown(self) -> str:
        """The card as markdown, one section per question a reviewer asks."""
        sections = [
            self._header(),
            self._intended_use(),
            self._warnings(),
            self._data(),
            self._metrics(),
            self._decision_rule(),
            self._features(),
            self._gate(),
            self._limits(),
        ]
        return "\n\n".join(section for section in sections if section) + "\n"

    def _header(self) -> str:
        spec = self.spec
        return "\n".join(
            [
                f"# Model card: {spec.model_name}",
                "",
                f"{spec.description}".strip(),
                "",
                f"- model: `{self.winner}` in a scikit-learn pipeline from raw rows "
                f"(chosen on validation rows among {', '.join(self.candidates)})",
                f"- target: `{spec.target.column}` with classes "
                f"{', '.join(self.class_names)}"
                + (
                    f"; positive class `{self.positive_label}`"
                    if self.positive_label
                    else ""
                ),
                f"- casework {self.code_version}, use case `{spec.name}`",
            ]
        )

    def _intended_use(self) -> str:
        text = self.spec.intended_use.strip() or "Not stated in the use-case spec."
        return f"## Intended use\n\n{text}"

    def _warnings(self) -> str:
        if not self.warnings:
            return ""
        lines = [f"> **Warning:** {warning}" for warning in self.warnings]
        return "## Warnings\n\n" + "\n>\n".join(lines)

    def _data(self) -> str:
        split = ", ".join(f"{part} {n}" for part, n in self.split_rows.items())
        how = self.spec.split.strategy + (
            f" on `{self.spec.split.column}`" if self.spec.split.column else ""
        )
        return "\n".join(
            [
                "## Data",
                "",
                f"- source: `{self.source}`",
                f"- fingerprint: `{self.fingerprint}`",
                f"- split ({how}): {split} rows; the final model is fitted on train and "
                "validation rows, every figure below is on test rows it never saw",
                "",
                "Quality report (before cleaning):",
                "",
                self.report.to_markdown(),
            ]
        )

    def _metrics(self) -> str:
        shown = [k for k in _HEADLINE if k in self.test_metrics]
        per_class = sorted(k for k in self.test_metrics if k.startswith("recall_"))
        per_class = [k for k in per_class if k not in ("recall_at_0_5",)]
        lines = ["## Metrics on test rows", ""]
        if self.threshold is not None:
            lines += [
                f"Counting metrics (F1, precision, recall, accuracy) are at the "
                f"decision threshold **{self.threshold:.4f}** "
                f"(strategy `{self.threshold_strategy}`).",
                "",
            ]
        else:
            lines += ["Counting metrics are for the most probable class.", ""]
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {self.test_metrics[k]:.4f} |" for k in shown]
        lines += [f"| {k} | {self.test_metrics[k]:.4f} |" for k in per_class]
        counts = [k for k in _COUNTS if k in self.test_metrics]
        lines += [f"| {k} | {int(self.test_metrics[k])} |" for k in counts]
        return "\n".join(lines)

    def _decision_rule(self) -> str:
        if self.threshold is None:
            return ""
        metrics = self.test_metrics
        lines = ["## Decision threshold", ""]
        if "precision_at_0_5" in metrics:
            lines.append(
                f"At {self.threshold:.4f}: precision {metrics.get('precision', 0):.3f}, "
                f"recall {metrics.get('recall', 0):.3f}. At the default 0.5: precision "
                f"{metrics['precision_at_0_5']:.3f}, recall {metrics['recall_at_0_5']:.3f}."
            )
        if "expected_cost" in metrics:
            spec = self.spec.threshold
            missed = (
                f"the value of `{spec.false_negative_cost_column}`"
                if spec.false_negative_cost_column
                else f"{spec.false_negative_cost}"
            )
            lines += [
                "",
                f"Expected cost on test rows (a missed positive costs {missed}, a false "
                f"alarm {spec.false_positive_cost}):",
                "",
                "| policy | cost |",
                "|---|---|",
                f"| model at {self.threshold:.4f} | {metrics['expected_cost']:,.2f} |",
                f"| flag nothing | {metrics['cost_flag_nothing']:,.2f} |",
                f"| flag everything | {metrics['cost_flag_everything']:,.2f} |",
            ]
        return "\n".join(lines)

    def _features(self, top: int = 10) -> str:
        if self.importance.empty:
            return ""
        lines = [
            "## Top input columns",
            "",
            "Permutation importance on test rows: the drop in score when a raw input "
            "column is shuffled.",
            "",
            "| column | importance | std |",
            "|---|---|---|",
        ]
        for row in self.importance.head(top).itertuples():
            lines.append(
                f"| {row.column} | {row.importance_mean:.4f} | {row.importance_std:.4f} |"
            )
        return "\n".join(lines)

    def _gate(self) -> str:
        if self.gate is None:
            return ""
        outcome = "promoted to champion" if self.gate.promote else "not promoted"
        return f"## Registry gate\n\n{outcome}: {self.gate.reason}"

    def _limits(self) -> str:
        limits = list(self.spec.known_limits) or ["None stated in the use-case spec."]
        return "## Known limits\n\n" + "\n".join(f"- {limit}" for limit in limits)


def log_card(card: ModelCard, model_id: str | None = None) -> str:
    """Log the card to the active MLflow run and, given ``model_id``, beside the
    logged model's own files; return the markdown."""
    import mlflow
    from mlflow import MlflowClient

    markdown = card.to_markdown()
    mlflow.log_text(markdown, CARD_FILE)
    if model_id:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / CARD_FILE
            path.write_text(markdown, encoding="utf-8")
            MlflowClient().log_model_artifact(model_id, str(path))
    return markdown


def card_summary(card: ModelCard, limit: int = 4000) -> str:
    """The card cut to ``limit`` characters, for a registry description field."""
    markdown = card.to_markdown()
    if len(markdown) <= limit:
        return markdown
    return markdown[: limit - 60].rsplit("\n", 1)[0] + f"\n\n(cut; see {CARD_FILE})\n"
