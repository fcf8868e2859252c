"""Score: find a model version in the registry, hold rows to its training schema, and
turn them into scores, labels and a record of what was unusual about them.

The schema of a version is its MLflow signature: the raw columns it was trained on,
numbers declared as floats. Rows to score are matched to it by column name (extra
columns are ignored, order does not matter); numbers stored as text are parsed as in
training, and blanks in a column that was all whole numbers are simply missing. A
category never seen in training is scored (the encoder ignores it) and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from casework.errors import DataError, RegistryError, SchemaError, first_line
from casework.tasks.clean import coerce_numeric_text
from casework.tasks.register import THRESHOLD_TAG
from casework.usecases.hooks import callable_name

__all__ = [
    "CLASSES_TAG",
    "OUTPUT_COLUMNS",
    "ScoreStats",
    "ScoringModel",
    "enforce_schema",
    "resolve_model",
    "score_frame",
]

logger = logging.getLogger(__name__)

CLASSES_TAG = "casework.classes"

#: Columns every score row carries after the id columns and the scores.
OUTPUT_COLUMNS = ("label", "model_name", "model_version", "scored_at")

_NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})


@dataclass(frozen=True)
class ScoringModel:
    """A registered model version, ready to score raw rows.

    Attributes:
        name: the registered model's name.
        version: the version number, as text.
        pipeline: the fitted pipeline, from raw rows to class probabilities.
        threshold: the decision threshold on the positive-class probability.
        classes: class labels in the order of the probability columns; for a
            binary model, ``[negative, positive]``.
        input_columns: the raw columns of the signature, in signature order.
        numeric_columns: those of ``input_columns`` the signature declares as numbers.
        categories: for each categorical column, the categories seen in training.
    """

    name: str
    version: str
    pipeline: Pipeline
    threshold: float
    classes: list[str]
    input_columns: list[str]
    numeric_columns: frozenset[str]
    categories: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def is_binary(self) -> bool:
        return len(self.classes) == 2

    def score_columns(self) -> list[str]:
        """``score`` for a binary model, else ``score_<class>`` for each class."""
        if self.is_binary:
            return ["score"]
        return [f"score_{label}" for label in self.classes]


@dataclass
class ScoreStats:
    """Counts over the rows of one scoring run, added up chunk by chunk."""

    rows: int = 0
    unseen_categories: Counter[str] = field(default_factory=Counter)
    unparsable_numbers: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)

    def add(self, other: ScoreStats) -> None:
        self.rows += other.rows
        self.unseen_categories.update(other.unseen_categories)
        self.unparsable_numbers.update(other.unparsable_numbers)
        self.labels.update(other.labels)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "unseen_categories": dict(sorted(self.unseen_categories.items())),
            "unparsable_numbers": dict(sorted(self.unparsable_numbers.items())),
            "labels": dict(sorted(self.labels.items())),
        }


def resolve_model(
    model_name: str,
    alias: str | None = None,
    version: str | None = None,
    trusted_functions: tuple[str, ...] = (),
) -> ScoringModel:
    """Look a version up by alias (default ``champion``) or number, and load it.

    The alias is resolved to a version number first, so the pipeline, signature and
    tags all come from the same version even if the alias moves meanwhile.

    Raises:
        RegistryError: no such model, alias or version, or the model cannot load.
    """
    from casework.tasks.model_store import load_pipeline

    entry = _model_version(model_name, alias, version)
    uri = f"models:/{model_name}/{entry.version}"
    pipeline = load_pipeline(uri, trusted_functions)
    info = _model_info(uri)
    metadata = info.metadata or {}

    classes = [str(c) for c in metadata.get("classes") or []] or _tag_classes(entry)
    # A multi-class model decides by arg-max and stores no threshold
    stored = entry.tags.get(THRESHOLD_TAG) or metadata.get("threshold")
    threshold = 0.5 if stored is None else float(stored)
    columns, numeric = _signature_columns(info, pipeline, uri)
    model = ScoringModel(
        name=model_name,
        version=str(entry.version),
        pipeline=pipeline,
        threshold=threshold,
        classes=classes,
        input_columns=columns,
        numeric_columns=numeric,
        categories=_seen_categories(pipeline),
    )
    logger.info(
        "Scoring with %s (%s, threshold %.4f, %d input columns)",
        model.uri,
        f"alias {alias}" if version is None else "pinned version",
        threshold,
        len(columns),
    )
    return model


def enforce_schema(
    frame: pd.DataFrame, model: ScoringModel, where: str = "rows to score"
) -> tuple[pd.DataFrame, Counter[str]]:
    """The model's input columns of ``frame``, by name and in signature order, with
    numbers parsed as in training.

    Returns:
        The frame to score, and per numeric column the number of cells that held a
        value that is not a number (they are scored as missing).

    Raises:
        SchemaError: ``frame`` lacks columns the model was trained on.
    """
    require_columns(frame.columns, model.input_columns, model, where)
    X = frame[model.input_columns].copy()
    unparsable: Counter[str] = Counter()
    for column in model.numeric_columns:
        values = X[column]
        if _is_time(values):  # a date is not a number: scored as missing, counted
            unparsable[column] = int(values.notna().sum())
            X[column] = coerce_numeric_text(values)
            continue
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(
            values
        ):
            X[column] = values.astype("float64")
            continue
        parsed = coerce_numeric_text(values)
        lost = parsed.isna() & values.notna()
        bad = int(_has_text(values[lost]).sum()) if lost.any() else 0
        if bad:
            unparsable[column] = bad
        X[column] = parsed
    return X, unparsable


def _is_time(values: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(
        values
    ) or pd.api.types.is_timedelta64_dtype(values)


def require_columns(
    present: Any, needed: list[str], model: ScoringModel, where: str
) -> None:
    """Raise one error naming every column of ``needed`` that ``present`` lacks.

    Raises:
        SchemaError: some columns are missing.
    """
    have = {str(c) for c in present}
    missing = [c for c in needed if c not in have]
    if missing:
        raise SchemaError(
            f"{where}: missing {len(missing)} column(s) that {model.name} v{model.version} "
            f"needs: {missing}; columns may come in any order and extra ones are ignored"
        )


def score_frame(
    frame: pd.DataFrame,
    model: ScoringModel,
    id_columns: list[str],
    scored_at: pd.Timestamp,
    where: str = "rows to score",
) -> tuple[pd.DataFrame, ScoreStats]:
    """Score raw rows: one output row per input row.

    Returns:
        The output frame (id columns, scores, label, model name and version, time of
        scoring) and the counts of unusual values met.

    Raises:
        SchemaError: a column the model or the id columns need is missing.
    """
    require_columns(frame.columns, [*id_columns, *model.input_columns], model, where)
    X, unparsable = enforce_schema(frame, model, where)

    cleaned = _cleaned(model.pipeline, X, where)
    unseen = _count_unseen(cleaned, model.categories)
    cut = _clean_step_index(model.pipeline) + 1
    proba = model.pipeline[cut:].predict_proba(cleaned)

    labels = _labels(proba, model)
    output = frame[id_columns].reset_index(drop=True)
    for position, column in enumerate(model.score_columns()):
        output[column] = proba[:, -1] if model.is_binary else proba[:, position]
    output["label"] = labels
    output["model_name"] = model.name
    output["model_version"] = model.version
    output["scored_at"] = scored_at

    stats = ScoreStats(
        rows=len(frame),
        unseen_categories=unseen,
        unparsable_numbers=unparsable,
        labels=Counter(pd.Series(labels).value_counts().to_dict()),
    )
    return output, stats


def _model_version(model_name: str, alias: str | None, version: str | None) -> Any:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        if version is not None:
            return client.get_model_version(model_name, str(version))
        return client.get_model_version_by_alias(model_name, alias or "champion")
    except MlflowException as exc:
        wanted = f"version {version}" if version is not None else f"alias {alias!r}"
        raise RegistryError(
            f"registered model {model_name!r} has no {wanted} "
            f"({first_line(exc).rstrip('.')}); "
            f"list versions with 'casework models' or train one with 'casework run'"
        ) from None


def _model_info(uri: str) -> Any:
    import mlflow

    try:
        return mlflow.models.get_model_info(uri)
    except Exception as exc:
        raise RegistryError(
            f"cannot read the MLmodel file of {uri!r}: {first_line(exc)}"
        ) from None


def _tag_classes(entry: Any) -> list[str]:
    text = entry.tags.get(CLASSES_TAG, "")
    classes = [c for c in text.split(",") if c]
    if len(classes) < 2:
        raise RegistryError(
            f"model version {entry.name!r} v{entry.version} records no classes "
            f"(tag {CLASSES_TAG!r} or MLmodel metadata); was it registered by casework?"
        )
    return classes


def _signature_columns(
    info: Any, pipeline: Pipeline, uri: str
) -> tuple[list[str], frozenset[str]]:
    """Input columns and numeric columns from the signature, else from the cleaner."""
    inputs = info.signature.inputs if info.signature is not None else None
    if inputs is not None and inputs.has_input_names():
        specs = inputs.inputs
        columns = [str(spec.name) for spec in specs]
        numeric = {
            str(spec.name)
            for spec in specs
            if getattr(spec.type, "name", "") in _NUMERIC_TYPES
        }
        return columns, frozenset(numeric)

    cleaner = pipeline.named_steps.get("clean")
    if cleaner is None or "features" in pipeline.named_steps:
        raise RegistryError(
            f"model {uri!r} has no column signature; casework cannot check rows against it"
        )
    columns = [*cleaner.numeric_columns_, *cleaner.categorical_columns_]
    return columns, frozenset(cleaner.numeric_columns_)


def _seen_categories(pipeline: Pipeline) -> dict[str, frozenset[str]]:
    """Categories the one-hot encoder saw in training, per categorical column."""
    encoder = pipeline.named_steps.get("encode")
    for name, transformer, columns in getattr(encoder, "transformers_", []):
        if name != "categorical" or not hasattr(transformer, "named_steps"):
            continue
        one_hot = transformer.named_steps.get("one_hot")
        # Data without categorical columns leaves the encoder unfitted
        if one_hot is None or not hasattr(one_hot, "categories_"):
            return {}
        return {
            str(column): frozenset(str(value) for value in seen)
            for column, seen in zip(columns, one_hot.categories_, strict=True)
        }
    return {}


def _count_unseen(
    cleaned: pd.DataFrame, categories: dict[str, frozenset[str]]
) -> Counter[str]:
    unseen: Counter[str] = Counter()
    for column, seen in categories.items():
        if column not in cleaned:
            continue
        values = cleaned[column]
        count = int((values.notna() & ~values.isin(list(seen))).sum())
        if count:
            unseen[column] = count
    return unseen


def _labels(proba: np.ndarray, model: ScoringModel) -> np.ndarray:
    classes = np.asarray(model.classes, dtype=object)
    if model.is_binary:
        return np.where(proba[:, 1] >= model.threshold, classes[1], classes[0])
    return classes[np.argmax(proba, axis=1)]


def _cleaned(pipeline: Pipeline, X: pd.DataFrame, where: str) -> pd.DataFrame:
    """``X`` through the pipeline's features hook, if it has one, and its cleaning.

    Raises:
        DataError: the features hook (the use case's own code) failed on these rows.
    """
    clean = _clean_step_index(pipeline)
    if clean:
        try:
            featured = pipeline[:clean].transform(X)
        except (Exception, SystemExit) as exc:  # the user's code, in one line
            raise DataError(
                f"{where}: the use case's features hook {_hook_name(pipeline[0])} "
                f"failed: {type(exc).__name__}: {first_line(exc)}"
            ) from None
        if len(featured) != len(X):
            raise DataError(
                f"{where}: the use case's features hook {_hook_name(pipeline[0])} "
                f"returned {len(featured)} rows for {len(X)}; it must keep every row"
            )
        X = featured
    return pipeline[clean].transform(X)


def _hook_name(step: Any) -> str:
    return callable_name(getattr(step, "func", step))


def _clean_step_index(pipeline: Pipeline) -> int:
    names = [name for name, _ in pipeline.steps]
    if "clean" not in names:
        raise RegistryError(
            f"the model's pipeline has steps {names}; expected a casework pipeline "
            "with a 'clean' step"
        )
    return names.index("clean")


def _has_text(values: pd.Series) -> pd.Series:
    """True where a cell holds something other than a blank or a missing value."""
    text = values.astype("string").str.strip()
    return text.notna() & text.ne("")
