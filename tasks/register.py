"""Register: a new model version under the use case's registered model, with the
``challenger`` alias, and ``champion`` only when it beats the current champion on
the same test rows by the spec's margin.

Nothing is left half-registered: the gate is decided before anything is written,
and a version whose tags or aliases fail to be set is deleted again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from casework.errors import CaseworkError, RegistryError, first_line
from casework.tasks.evaluate import evaluate_metrics, is_better
from casework.usecases.spec import MetricSpec

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "GateDecision",
    "RegisteredVersion",
    "current_champion",
    "decide_promotion",
    "digest_of_rows",
    "register_version",
]

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
THRESHOLD_TAG = "casework.threshold"
TEST_ROWS_TAG = "casework.test_rows"


@dataclass(frozen=True)
class GateDecision:
    """Whether the new version takes the champion alias, and why."""

    promote: bool
    reason: str
    metric: str
    challenger_score: float
    champion_score: float | None = None
    champion_version: str | None = None
    # digest_of_rows of the test rows the decision was made on
    test_rows: str = ""


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered model version and the aliases it holds."""

    name: str
    version: str
    aliases: tuple[str, ...]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def current_champion(model_name: str) -> Any | None:
    """The registry's champion version of ``model_name``, or None if there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
            return None
        raise


def digest_of_rows(X_test: pd.DataFrame, y_test: np.ndarray) -> str:
    """A digest of the test rows (columns, values, targets), stored with each version
    so that a later gate can tell whether it judges on the very same rows."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, X_test.columns)).encode())
    digest.update(pd.util.hash_pandas_object(X_test, index=False).to_numpy().tobytes())
    digest.update(np.asarray(y_test).astype(str).astype(bytes).tobytes())
    return digest.hexdigest()


def decide_promotion(
    model_name: str,
    metric: MetricSpec,
    challenger_score: float,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    trusted_functions: tuple[str, ...] = (),
) -> GateDecision:
    """Score the current champion on the challenger's test rows and compare.

    A champion registered on the very same test rows (same digest) keeps the score it
    recorded then: the model is fixed, so scoring it again would give the same.
    """
    digest = digest_of_rows(X_test, y_test)
    champion = current_champion(model_name)
    if champion is None:
        return GateDecision(
            True,
            "first version of this model: it becomes champion",
            metric.primary,
            challenger_score,
            test_rows=digest,
        )

    try:
        champion_score = _recorded_score(champion, metric.primary, digest)
        if champion_score is None:
            champion_score = _champion_score(
                model_name, champion, metric.primary, X_test, y_test, trusted_functions
            )
    except (CaseworkError, ValueError, KeyError) as exc:
        reason = (
            f"current champion v{champion.version} cannot score these test rows ({exc}); "
            "kept as champion; promote by hand with 'casework promote' if intended"
        )
        logger.warning(reason)
        return GateDecision(
            False,
            reason,
            metric.primary,
            challenger_score,
            None,
            str(champion.version),
            digest,
        )

    promote = is_better(
        metric.primary, challenger_score, champion_score, metric.promote_margin
    )
    verdict = "beats" if promote else "does not beat"
    reason = (
        f"{metric.primary} {challenger_score:.4f} {verdict} champion v{champion.version}'s "
        f"{champion_score:.4f} on the same test rows by the margin {metric.promote_margin}"
    )
    return GateDecision(
        promote,
        reason,
        metric.primary,
        challenger_score,
        champion_score,
        str(champion.version),
        digest,
    )


def _recorded_score(champion: Any, metric: str, digest: str) -> float | None:
    """The champion's recorded test score, if it was judged on these same rows."""
    if champion.tags.get(TEST_ROWS_TAG) != digest:
        return None
    recorded = champion.tags.get(f"casework.test_{metric}")
    if recorded is None or not np.isfinite(float(recorded)):
        return None
    logger.info(
        "Champion v%s was judged on these same test rows: its %s is its recorded %s",
        champion.version,
        metric,
        recorded,
    )
    return float(recorded)


def _champion_score(
    model_name: str,
    champion: Any,
    metric: str,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    trusted_functions: tuple[str, ...],
) -> float:
    """The champion, loaded from the registry, scored on these test rows."""
    from casework.tasks.model_store import load_pipeline

    pipeline = load_pipeline(
        f"models:/{model_name}/{champion.version}", trusted_functions
    )
    threshold = float(champion.tags.get(THRESHOLD_TAG, 0.5))
    scores = evaluate_metrics(y_test, pipeline.predict_proba(X_test), threshold)
    return scores.get(metric, float("nan"))


def register_version(
    model_name: str,
    model_info: Any,
    decision: GateDecision,
    tags: dict[str, str],
    description: str = "",
    version_description: str = "",
) -> RegisteredVersion:
    """Create the model version of a logged model, tagged, and move the aliases.

    Args:
        model_info: MLflow's ``ModelInfo`` of the logged model.
        description: of the registered model, set when it is first created.
        version_description: of the new version (casework puts the model card there).

    Raises:
        RegistryError: the registry refused; the version, if created, is deleted.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    _ensure_registered_model(client, model_name, description)
    try:
        version = client.create_model_version(
            model_name,
            model_info.model_uri,
            run_id=model_info.run_id,
            tags=tags,
            description=version_description or None,
            model_id=model_info.model_id,
        )
    except Exception as exc:
        raise RegistryError(
            f"cannot register {model_name!r}: {first_line(exc)}"
        ) from None

    aliases = [CHALLENGER] + ([CHAMPION] if decision.promote else [])
    try:
        for alias in aliases:
            client.set_registered_model_alias(model_name, alias, version.version)
    except Exception as exc:
        client.delete_model_version(model_name, version.version)
        raise RegistryError(
            f"cannot set aliases on {model_name!r} v{version.version} "
            f"(version removed): {first_line(exc)}"
        ) from None

    logger.info(
        "Registered %s v%s with aliases %s", model_name, version.version, aliases
    )
    return RegisteredVersion(model_name, str(version.version), tuple(aliases))


def _ensure_registered_model(client: Any, name: str, description: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=description or None)
