"""Starting and checking the Prefect API a command will talk to.

With ``PREFECT_API_URL`` unset, a command that runs a flow starts Prefect's API server
for itself in a child process on loopback, as Prefect's own ephemeral mode does, and
stops it on exit. :func:`start_local_api` launches it before Prefect is imported in
this process, so the server boots on another core while the command imports its
libraries, instead of after them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from casework.errors import TrackingError, first_line
from casework.settings import DATABASE_SCHEMES, missing_sqlite_file
from casework.tasks.redact import redact_url

__all__ = [
    "LocalPrefectAPI",
    "check_mlflow_server",
    "check_prefect_api",
    "check_tracking_store",
    "quiet_expected_errors",
    "require_prefect_server",
    "start_local_api",
]

logger = logging.getLogger(__name__)

# Prefect's services (log and event workers) while they drain at exit.
_DRAINING = "Still processing items:"

_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b")

#: Seconds a local API may take to answer its health check after launch.
LOCAL_API_TIMEOUT_SECONDS = 60.0

# What Prefect's SubprocessASGIServer sets for its ephemeral server: no UI, and
# only the services an ephemeral server runs. Prefect's class is not used because
# importing its module costs more than a second before the server can even launch.
_EPHEMERAL_SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}


class LocalPrefectAPI:
    """Prefect's API server for one command, in a child process on loopback.

    The server's own messages go to ``log_path``; a server that fails to start is
    reported with the last line it wrote there.
    """

    def __init__(
        self, process: subprocess.Popen[bytes], url: str, log_path: Path, offset: int
    ):
        self.process = process
        self.url = url
        self.log_path = log_path
        self._log_offset = offset

    def wait_until_ready(self, timeout: float = LOCAL_API_TIMEOUT_SECONDS) -> None:
        """Return once the server answers its health check.

        Raises:
            TrackingError: the server exited, or did not answer within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TrackingError(
                    f"Prefect's local API exited with code {self.process.returncode} "
                    f"before answering: {self._last_log_line()} (whole log: "
                    f"{self.log_path}); fix that, or set PREFECT_API_URL to a "
                    "running Prefect server"
                )
            if self._healthy():
                return
            time.sleep(0.05)
        raise TrackingError(
            f"Prefect's local API did not answer within {timeout:.0f} s; set "
            "PREFECT_API_URL to a running Prefect server instead"
        )

    @contextlib.contextmanager
    def flow_settings(self) -> Iterator[None]:
        """Prefect's settings for flow runs reporting to this API: no heartbeats.

        Heartbeats let a lasting server mark the runs of a process that died as
        crashed. This API ends with the command, so nothing would read them, and
        Prefect's heartbeat thread holds the end of every flow run for up to a
        second: it sleeps in one-second steps before it sees the run is over.
        """
        from prefect.settings import (
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            temporary_settings,
        )

        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield

    def stop(self) -> None:
        """Stop the server; it is killed if it has not ended within 5 s."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _last_log_line(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                lines = log.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "it wrote no log"
        written = [line.rstrip() for line in lines if line.strip()]
        # The exception that ended it says more than uvicorn's closing words
        raised = [line for line in written if _EXCEPTION_LINE.match(line)]
        if raised:
            return raised[-1]
        return written[-1].strip() if written else "it wrote nothing"

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False


def start_local_api() -> LocalPrefectAPI | None:
    """Launch Prefect's API server for this command and point ``PREFECT_API_URL``
    at it; None when ``PREFECT_API_URL`` already names a server.

    Call it before Prefect is imported in this process: Prefect reads its settings
    once, at import. Child processes (a local Dask cluster's workers) inherit the
    variable, so their task runs land in the same API. The server is stopped when
    the command exits; call :meth:`LocalPrefectAPI.wait_until_ready` before the
    first flow runs.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None

    port = _free_loopback_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    log_path = _server_log_path()
    with log_path.open("ab") as log:
        offset = log.tell()
        # Its own session: a Ctrl-C meant for the command must not kill the API the
        # flow still reports to while it stops; the exit handler stops the server.
        process = subprocess.Popen(
            command,
            env={**os.environ, **_EPHEMERAL_SERVER_ENV},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_stopped_with_parent if sys.platform == "linux" else None,
        )
    api = LocalPrefectAPI(process, f"http://127.0.0.1:{port}/api", log_path, offset)
    atexit.register(api.stop)
    os.environ["PREFECT_API_URL"] = api.url
    logger.debug("Prefect's local API for this command: %s", api.url)
    return api


def _stopped_with_parent() -> None:
    """In the server's process, before it starts: Linux sends it SIGTERM when the
    command's process dies, even by SIGKILL, which runs no exit handler."""
    set_parent_death_signal = 1  # PR_SET_PDEATHSIG, <linux/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(set_parent_death_signal, signal.SIGTERM)


def _server_log_path() -> Path:
    """``local-api.log`` in Prefect's home folder (casework's, unless set)."""
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home / "local-api.log"


def _free_loopback_port() -> int:
    # The port is free now; another process taking it before the server binds it
    # makes the server exit, which wait_until_ready reports.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


# Database servers MLflow can track to, and the connect argument that bounds the wait
# for each one's driver; MLflow itself retries a failed connection for about 100 s.
_DATABASE_TIMEOUT_ARGUMENT = {
    "postgresql": "connect_timeout",
    "mysql": "connect_timeout",
}


def check_tracking_store(
    uri: str, must_exist: bool = False, timeout_seconds: float = 5.0
) -> None:
    """Fail in one line when the tracking store at ``uri`` cannot be used: an MLflow
    server that does not answer, a database server that refuses the connection, or,
    with ``must_exist`` (commands that only read), a SQLite file that is not there."""
    scheme = uri.partition(":")[0].lower()
    if scheme in ("http", "https"):
        check_mlflow_server(uri, timeout_seconds)
    elif scheme == "sqlite" and must_exist:
        _require_sqlite_file(uri)
    elif scheme.partition("+")[0] in DATABASE_SCHEMES:
        _check_database(uri, timeout_seconds)


def _require_sqlite_file(uri: str) -> None:
    """Refuse a SQLite tracking database that does not exist, instead of letting
    MLflow create it, and its folders, for a command that only reads."""
    database = missing_sqlite_file(uri)
    if database:
        raise TrackingError(
            f"no MLflow tracking database exists at {database}, so nothing is "
            "registered there: train a use case first ('casework run <usecase>'), or "
            "point MLFLOW_TRACKING_URI at the database your models are in"
        )


def _check_database(uri: str, timeout_seconds: float) -> None:
    """Connect to a tracking database once, waiting at most ``timeout_seconds``."""
    import sqlalchemy as sa

    backend = uri.partition(":")[0].partition("+")[0].lower()
    argument = _DATABASE_TIMEOUT_ARGUMENT.get(backend)
    connect_args = {argument: max(2, round(timeout_seconds))} if argument else {}
    where = f"MLflow tracking database at {redact_url(uri)}"
    try:
        engine = sa.create_engine(uri, connect_args=connect_args)
    except ImportError as exc:
        raise TrackingError(
            f"{where}: its database driver is not installed ({exc}); install it, or "
            "name an installed one after a '+' in the URI (casework ships psycopg: "
            "postgresql+psycopg://...)"
        ) from None
    try:
        with engine.connect():
            pass
    except Exception as exc:  # drivers raise their own types; all mean the same here
        raise TrackingError(
            f"{where} cannot be reached: {redact_url(first_line(exc, 200))}; start "
            "it, or correct MLFLOW_TRACKING_URI"
        ) from None
    finally:
        engine.dispose()


class _ConsoleFilter(logging.Filter):
    """Keeps three kinds of record off the console. casework's own, expected errors:
    the CLI reports each in one line (Prefect's API handler still records them for
    the UI). Prefect's "View at" link to the local API, which serves no UI and is
    gone when the command ends. And the "Still processing items" of Prefect's log
    and event workers sending their last items at exit: it came after the command's
    own last line, the summary or the error."""

    def __init__(self, local_api_url: str | None):
        super().__init__()
        self.local_link = (
            f"View at {local_api_url.removesuffix('/api')}/" if local_api_url else None
        )

    def filter(self, record: logging.LogRecord) -> bool:
        from casework import errors

        if record.exc_info and isinstance(record.exc_info[1], errors.CaseworkError):
            return False
        message = record.getMessage()
        if self.local_link and message.startswith(self.local_link):
            return False
        if message.startswith(_DRAINING):
            return False
        if "encountered an exception" not in message:
            return True
        return not any(f"{name}:" in message for name in errors.__all__)


def quiet_expected_errors(local_api: LocalPrefectAPI | None = None) -> None:
    """Install the console filter on every console handler Prefect sets up when
    imported; given ``local_api``, links to it are left out too."""
    import prefect.main  # noqa: F401 - importing it sets up Prefect's log handlers

    console_filter = _ConsoleFilter(local_api.url if local_api else None)
    loggers = [logging.getLogger(), *map(logging.getLogger, _prefect_logger_names())]
    for handler in {h for lg in loggers for h in lg.handlers}:
        if isinstance(handler, logging.StreamHandler):
            handler.addFilter(console_filter)


def _prefect_logger_names() -> list[str]:
    return [
        name for name in logging.Logger.manager.loggerDict if name.startswith("prefect")
    ]
