"""Saving a fitted pipeline as an MLflow model, and loading it back safely.

Models are saved in the skops format. Loading goes through :func:`load_pipeline`,
which checks the saved types against casework's own allow-list rather than the list
stored in the model, so a tampered model cannot whitelist code for itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from casework.errors import RegistryError, first_line
from casework.usecases.hooks import callable_name, load_callable
from casework.usecases.spec import UseCaseSpec

__all__ = [
    "TRUSTED_TYPES",
    "load_pipeline",
    "log_pipeline",
    "model_input_frame",
    "trusted_hook_names",
]

logger = logging.getLogger(__name__)

# Types beyond scikit-learn's own that casework's pipelines hold.
TRUSTED_TYPES = (
    "casework.tasks.clean.TabularCleaner",
    "casework.tasks.candidates.TorchMLPClassifier",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)

_RUNTIME_PACKAGES = ("casework", "scikit-learn", "skops", "pandas", "numpy", "scipy")

# The import name of each pinned package, where it differs from the package name.
_MODULE_OF = {"scikit-learn": "sklearn"}


def log_pipeline(
    pipeline: Pipeline,
    signature_rows: pd.DataFrame,
    trusted_functions: tuple[str, ...] = (),
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Log ``pipeline`` to the active MLflow run as the model ``model``.

    Args:
        pipeline: the fitted pipeline, taking raw rows.
        signature_rows: a few training rows without id or PII columns; they become
            the input example and, typed as the cleaner sees them, the signature.
        trusted_functions: dotted names of hook functions inside the pipeline.
        metadata: stored in the MLmodel file (threshold, classes, ...).

    Returns:
        MLflow's ``ModelInfo`` for the logged model.
    """
    import mlflow
    from mlflow.models import infer_signature

    example = model_input_frame(pipeline, signature_rows)
    signature = infer_signature(example, pipeline.predict_proba(signature_rows))
    with _pins_checked_without_scan():
        return mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            input_example=example.head(5),
            serialization_format="skops",
            skops_trusted_types=[*TRUSTED_TYPES, *trusted_functions],
            pip_requirements=_pip_requirements(),
            pyfunc_predict_fn="predict_proba",
            metadata=metadata or {},
        )


@contextlib.contextmanager
def _pins_checked_without_scan() -> Iterator[None]:
    """MLflow's check of the pins against the installed packages, without its map of
    every installed distribution to its modules.

    Building that map reads each distribution's file list: 0.3-1 s, the slowest part
    of logging a model. The pins are read from the installed versions, so the map is
    given just their packages for the call, and MLflow's own is left unbuilt.
    """
    from mlflow.utils import requirements_utils

    # A private MLflow cache. Should it be renamed or already built, MLflow's own
    # check runs as before: slower, still correct.
    if getattr(requirements_utils, "_MODULES_TO_PACKAGES", "renamed") is not None:
        yield
        return
    pinned = {_MODULE_OF.get(name, name): [name] for name in _RUNTIME_PACKAGES}
    requirements_utils._MODULES_TO_PACKAGES = pinned
    try:
        yield
    finally:
        requirements_utils._MODULES_TO_PACKAGES = None


def model_input_frame(pipeline: Pipeline, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` as the signature declares them: columns the model uses, numbers as
    floats (so blanks at scoring are allowed), categories as text."""
    from casework.tasks.clean import coerce_numeric_text

    cleaner = pipeline.named_steps["clean"]
    used = [c for c in rows.columns if c not in cleaner.empty_columns_]
    frame = rows[used].copy()
    for column in used:
        if column in cleaner.numeric_columns_:
            frame[column] = coerce_numeric_text(frame[column])
        elif column in cleaner.categorical_columns_:
            frame[column] = (
                frame[column].astype("object").where(frame[column].notna(), None)
            )
    return frame


def load_pipeline(model_uri: str, trusted_functions: tuple[str, ...] = ()) -> Pipeline:
    """Load a pipeline saved by :func:`log_pipeline`, from a run, logged model or
    registry URI such as ``models:/churn@champion``.

    Raises:
        RegistryError: the model cannot be found, or holds types casework does not trust.
    """
    import mlflow
    import skops.io

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    except Exception as exc:
        raise RegistryError(
            f"cannot load model {model_uri!r}: {first_line(exc)}"
        ) from None

    saved = next(local.rglob("*.skops"), None)
    if saved is None:
        raise RegistryError(
            f"model {model_uri!r} was not saved by casework (no skops file)"
        )
    untrusted = set(skops.io.get_untrusted_types(file=saved))
    unexpected = sorted(untrusted - set(TRUSTED_TYPES) - set(trusted_functions))
    if unexpected:
        raise RegistryError(
            f"model {model_uri!r} holds types casework does not trust: {unexpected}"
        )
    return skops.io.load(saved, trusted=sorted(untrusted))


def _pip_requirements() -> list[str]:
    """Exact versions of what the model needs at load time.

    Given explicitly: inferring them is slow and drops the CPU wheel's local label.
    """
    pins = []
    for package in _RUNTIME_PACKAGES:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def trusted_hook_names(spec: UseCaseSpec) -> tuple[str, ...]:
    """Dotted names of the hook functions a use case puts inside its models."""
    if not spec.hooks.features:
        return ()
    function = load_callable(spec.hooks.features, spec.base_dir)
    return (callable_name(function),)
