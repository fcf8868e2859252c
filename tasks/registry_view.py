"""Reading and changing a registered model's versions and aliases by hand."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from casework.errors import RegistryError
from casework.tasks.register import CHAMPION
from casework.tasks.track import _safe

__all__ = ["list_versions", "set_champion"]

logger = logging.getLogger(__name__)


def list_versions(model_name: str) -> list[dict[str, Any]]:
    """Versions of ``model_name``, newest first, with metric, aliases and data."""
    from mlflow import MlflowClient

    from casework.settings import tracking_uri

    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{_quoted(model_name)}'")
        aliases = _aliases_by_version(client, model_name) if versions else {}
    except Exception as exc:
        raise RegistryError(
            f"cannot read the registry at {_safe(tracking_uri())}: {exc}"
        ) from None

    rows = []
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        metric = version.tags.get("casework.primary_metric", "")
        rows.append(
            {
                "version": str(version.version),
                "aliases": ", ".join(sorted(aliases.get(str(version.version), [])))
                or "-",
                "metric": metric or "-",
                "score": version.tags.get(f"casework.test_{metric}", "-"),
                "fingerprint": version.tags.get("casework.data_fingerprint", "-"),
                "created": datetime.fromtimestamp(
                    version.creation_timestamp / 1000, UTC
                ).strftime("%Y-%m-%d %H:%M"),
                "run_id": version.run_id or "-",
            }
        )
    return rows


def set_champion(model_name: str, version: str) -> None:
    """Move the champion alias of ``model_name`` to ``version``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        client.get_model_version(model_name, version)
        client.set_registered_model_alias(model_name, CHAMPION, version)
    except MlflowException as exc:
        raise RegistryError(
            f"cannot make {model_name!r} v{version} champion: {exc.message}"
        ) from None


def _aliases_by_version(client: Any, model_name: str) -> dict[str, list[str]]:
    """Aliases per version; search results of some stores leave them out."""
    by_version: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(model_name).aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    return by_version


def _quoted(name: str) -> str:
    return name.replace("'", "''")
