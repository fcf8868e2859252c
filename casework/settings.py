"""Where casework keeps its state, and how it finds MLflow and Prefect.

With no environment variables set, everything stays on this machine: MLflow tracks
to a SQLite file and Prefect runs its ephemeral local API, both under the casework
home folder. ``MLFLOW_TRACKING_URI`` and ``PREFECT_API_URL`` switch to servers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

from casework.errors import CaseworkError, TrackingError

__all__ = [
    "artifact_location",
    "casework_home",
    "configure_environment",
    "is_local_tracking",
    "tracking_uri",
]

logger = logging.getLogger(__name__)

HOME_ENV = "CASEWORK_HOME"
DEFAULT_HOME = ".casework"

# Prefect settings casework changes unless the user has set them: no telemetry (this
# machine may have no internet) and quieter logs for a command-line tool.
_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
    # casework's module loggers show up in the Prefect UI beside the run's own logs.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "casework",
    # ...and outside a flow run they stay on the console without a warning.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}


def casework_home() -> Path:
    """The folder for local state: ``$CASEWORK_HOME``, default ``./.casework``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, or a SQLite database in the casework home.

    Raises:
        TrackingError: the variable names a store MLflow cannot use.
    """
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        _refuse_unusable_store(configured)
        return configured
    return f"sqlite:///{casework_home() / 'mlflow.db'}"


#: Database servers MLflow can track to; a URI may name the driver (postgresql+psycopg).
DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")
_TRACKING_SCHEMES = ("sqlite", "http", "https", *DATABASE_SCHEMES)


def _refuse_unusable_store(uri: str) -> None:
    """One line, with what to use instead, for a tracking URI MLflow 3 cannot use:
    its file store (``./mlruns``, ``file:///...``), which it refuses with a traceback,
    or a scheme it has no store for, which ends in its KeyError."""
    from casework.tasks.redact import redact_url

    scheme = urlparse(uri).scheme.lower()
    if scheme.startswith("databricks") or uri.startswith("databricks"):
        return
    if scheme in ("", "file"):
        problem = "MLflow's file store (a folder of runs) is not supported"
    elif scheme.partition("+")[0] not in _TRACKING_SCHEMES:
        problem = f"MLflow cannot track to {scheme!r} URIs"
    else:
        return
    raise TrackingError(
        f"MLFLOW_TRACKING_URI={redact_url(uri)}: {problem}; use a database such as "
        "sqlite:///path/to/mlflow.db (or postgresql://, mysql://, mssql://), or an "
        "MLflow server at http(s)://host:port"
    )


def missing_sqlite_file(url: str) -> str | None:
    """The file a ``sqlite://`` URL names when it does not exist; None for other
    URLs, in-memory databases and files that are there. Connecting would create it:
    a command that only reads should refuse it instead."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if database and database != ":memory:" and not Path(database).is_file():
        return database
    return None


def is_local_tracking() -> bool:
    """True when MLflow tracks to a file on this machine rather than a server."""
    return tracking_uri().startswith("sqlite:")


def artifact_location(usecase: str) -> str | None:
    """Where a new experiment keeps its artifacts; None lets the server decide."""
    if not is_local_tracking():
        return None
    return (casework_home() / "artifacts" / usecase).as_uri()


def configure_environment() -> None:
    """Point Prefect and MLflow at their local defaults, before either is imported.

    Variables the user has set are left alone.
    """
    uri = tracking_uri()  # a tracking URI casework cannot use fails first
    home = casework_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CaseworkError(
            f"{HOME_ENV}={home}: cannot use it as casework's home folder "
            f"({exc.strerror}); point it at a writable folder"
        ) from None

    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    for name, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)

    os.environ.setdefault("MLFLOW_TRACKING_URI", uri)
    # Fail in seconds, not minutes, when a tracking server is down.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    logger.debug("casework home is %s", home)
