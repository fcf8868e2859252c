"""Starting and checking the Prefect API a command will talk to.

With ``PREFECT_API_URL`` unset, Prefect starts a temporary local server the first
time a flow runs, which takes seconds; :func:`warm_up_prefect` starts it in a
background thread so that it comes up while the command imports its libraries.
"""

from __future__ import annotations

import logging
import os
import threading

from casework.errors import TrackingError
from casework.tasks.redact import redact_url

__all__ = [
    "check_mlflow_server",
    "check_prefect_api",
    "quiet_expected_errors",
    "require_prefect_server",
    "share_local_api",
    "warm_up_prefect",
]

logger = logging.getLogger(__name__)


def warm_up_prefect() -> threading.Thread | None:
    """Start Prefect's ephemeral API in the background; None when a server is set."""
    if os.environ.get("PREFECT_API_URL"):
        return None

    # Importing, booting and stopping this server costs about 6.5 s a command, more
    # than the 5 s overhead target allows on its own; a running server avoids it.
    def start() -> None:
        from prefect.server.api.server import SubprocessASGIServer

        try:
            SubprocessASGIServer().start()
        except Exception as exc:  # the flow will start it again and report properly
            logger.debug("Warm-up of the ephemeral Prefect API failed: %s", exc)

    thread = threading.Thread(target=start, name="prefect-warm-up", daemon=True)
    thread.start()
    return thread


def share_local_api() -> None:
    """Export the URL of this process's ephemeral Prefect API as ``PREFECT_API_URL``.

    Worker processes (a local Dask cluster) inherit the environment, so their task
    runs land in the same API as the flow run instead of each starting a temporary
    server of its own. Nothing changes when ``PREFECT_API_URL`` is already set.
    """
    if os.environ.get("PREFECT_API_URL"):
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    logger.debug("Sharing the ephemeral Prefect API at %s", server.api_url)


def check_prefect_api(
    timeout_seconds: float = 5.0,
    hint: str = "start the server or unset PREFECT_API_URL to run locally",
) -> None:
    """Fail in one line when ``PREFECT_API_URL`` is set but does not answer; the
    message ends with ``hint``."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return
    import httpx

    health = url.rstrip("/") + "/health"
    try:
        response = httpx.get(health, timeout=timeout_seconds)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise TrackingError(
            f"Prefect API at {redact_url(url)} does not answer ({type(exc).__name__}); "
            f"{hint}"
        ) from None


def require_prefect_server() -> None:
    """Fail in one line unless ``PREFECT_API_URL`` names a Prefect server that answers.

    Schedules need a server: Prefect's temporary local API lives only as long as
    the command that started it.
    """
    if not os.environ.get("PREFECT_API_URL"):
        raise TrackingError(
            "casework deploy needs a Prefect server, and PREFECT_API_URL is not set: "
            "start one with 'prefect server start' and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api, or run 'docker compose up'"
        )
    check_prefect_api(
        hint="start it ('prefect server start', or 'docker compose up') or correct "
        "PREFECT_API_URL"
    )


def check_mlflow_server(uri: str, timeout_seconds: float = 5.0) -> None:
    """Fail in one line when ``uri`` is an MLflow server (http or https) that does
    not answer its health check; other tracking URIs are left alone."""
    if not uri.startswith(("http://", "https://")):
        return
    import httpx

    try:
        response = httpx.get(uri.rstrip("/") + "/health", timeout=timeout_seconds)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise TrackingError(
            f"MLflow tracking server at {redact_url(uri)} does not answer "
            f"({type(exc).__name__}); start it or unset MLFLOW_TRACKING_URI to track "
            "locally"
        ) from None


class _ExpectedErrorFilter(logging.Filter):
    """Keeps casework's own, expected errors off the console: the CLI reports each in
    one line. Prefect's API handler still records them for the UI."""

    def filter(self, record: logging.LogRecord) -> bool:
        from casework import errors

        if record.exc_info and isinstance(record.exc_info[1], errors.CaseworkError):
            return False
        message = record.getMessage()
        if "encountered an exception" not in message:
            return True
        return not any(f"{name}:" in message for name in errors.__all__)


def quiet_expected_errors() -> None:
    """Install the filter on every console handler Prefect sets up when imported."""
    import prefect.main  # noqa: F401 - importing it sets up Prefect's log handlers

    expected = _ExpectedErrorFilter()
    loggers = [logging.getLogger(), *map(logging.getLogger, _prefect_logger_names())]
    for handler in {h for lg in loggers for h in lg.handlers}:
        if isinstance(handler, logging.StreamHandler):
            handler.addFilter(expected)


def _prefect_logger_names() -> list[str]:
    return [
        name for name in logging.Logger.manager.loggerDict if name.startswith("prefect")
    ]
