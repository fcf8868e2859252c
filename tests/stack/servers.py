"""Real Prefect and MLflow servers on loopback, each on a fresh PostgreSQL database.

A test harness made of plain functions and context managers, so that pytest fixtures
(or a script) can pick the pieces they need:

* :func:`postgres_admin_url` and :func:`require_postgres` find the PostgreSQL server
  named by ``CASEWORK_TEST_PG_URL`` (default
  ``postgresql://postgres@127.0.0.1:5432/test``), or skip the test without it.
* :func:`fresh_database` creates a uniquely named database and drops it afterwards.
* :func:`prefect_server` and :func:`mlflow_server` each run one real server as a
  subprocess on ``127.0.0.1`` and a free port, backed by its own fresh database.
* :func:`running_stack` starts both at once (their start-ups overlap) and yields a
  :class:`Stack` with the URLs and the environment a client process needs.

Example, in a session-scoped fixture::

    @pytest.fixture(scope="session")
    def stack(tmp_path_factory):
        admin_url = require_postgres()
        with running_stack(tmp_path_factory.mktemp("stack"), admin_url) as stack:
            yield stack

Every process started here gets its own session (process group), and is stopped with
SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_SECONDS`; its database is dropped
afterwards, whether the test passed or failed. A server that exits early or does not
answer its health check within the timeout raises :class:`ServerStartError` with the
tail of its log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "DEFAULT_PG_ADMIN_URL",
    "PG_URL_ENV_VAR",
    "STARTUP_TIMEOUT_SECONDS",
    "STOP_TIMEOUT_SECONDS",
    "ServerProcess",
    "ServerStartError",
    "Stack",
    "free_port",
    "fresh_database",
    "launch_mlflow_server",
    "launch_prefect_server",
    "launch_process",
    "mlflow_server",
    "postgres_admin_url",
    "prefect_server",
    "require_postgres",
    "running_stack",
    "stop_server",
    "wait_until_healthy",
    "with_driver",
]

logger = logging.getLogger(__name__)

PG_URL_ENV_VAR = "CASEWORK_TEST_PG_URL"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
LOOPBACK_HOST = "127.0.0.1"

#: Seconds a server gets to answer its health check. A cold Prefect start migrates a
#: fresh database first; on 2 busy cores that has taken ~15 s.
STARTUP_TIMEOUT_SECONDS = 120.0
#: Seconds between SIGTERM and SIGKILL when stopping a server's process group.
STOP_TIMEOUT_SECONDS = 10.0

_DATABASE_PREFIX = "casework_test"
_LOG_TAIL_LINES = 40
_POLL_INTERVAL_SECONDS = 0.25
# Loopback requests must not go through an HTTP proxy from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerStartError(RuntimeError):
    """A server exited, or did not answer its health check in time."""


@dataclass
class ServerProcess:
    """One server started by this module.

    Attributes:
        name: Short label used in logs and errors (``"prefect"``, ``"mlflow"``).
        url: Base URL on loopback, e.g. ``http://127.0.0.1:41234``.
        health_url: URL answering 200 once the server is ready.
        process: The server's process, leader of its own process group.
        log_path: File holding the server's stdout and stderr.
        database_url: ``postgresql://`` URL of the server's own database ("" if none).
        started_at: ``time.monotonic()`` when the process was launched.
        startup_seconds: Seconds from launch until the health check passed
            (NaN until :func:`wait_until_healthy` has succeeded).
    """

    name: str
    url: str
    health_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    database_url: str
    started_at: float = field(default_factory=time.monotonic)
    startup_seconds: float = float("nan")

    def log_tail(self, n_lines: int = _LOG_TAIL_LINES) -> str:
        """Return the last ``n_lines`` of the server's log."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"<log {self.log_path} unreadable: {exc}>"
        return "\n".join(lines[-n_lines:])


@dataclass(frozen=True)
class Stack:
    """A Prefect server and an MLflow server started together."""

    prefect: ServerProcess
    mlflow: ServerProcess

    @property
    def prefect_api_url(self) -> str:
        """The value for ``PREFECT_API_URL``."""
        return f"{self.prefect.url}/api"

    @property
    def mlflow_tracking_uri(self) -> str:
        """The value for ``MLFLOW_TRACKING_URI``."""
        return self.mlflow.url

    def client_env(self, prefect_home: Path) -> dict[str, str]:
        """Environment for a client subprocess talking to both servers.

        Args:
            prefect_home: A private folder for the client's ``PREFECT_HOME``, so that
                the client neither reads nor writes the user's ``~/.prefect``.
        """
        env = _environment_without(("PREFECT_", "MLFLOW_"))
        env.update(
            PREFECT_API_URL=self.prefect_api_url,
            PREFECT_HOME=str(prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            MLFLOW_TRACKING_URI=self.mlflow_tracking_uri,
        )
        return env


# PostgreSQL ---------------------------------------------------------------------------


def postgres_admin_url(timeout_seconds: int = 3) -> str | None:
    """Return the admin URL of the test PostgreSQL, or None when it does not answer.

    The URL comes from ``CASEWORK_TEST_PG_URL`` (default
    ``postgresql://postgres@127.0.0.1:5432/test``) and must allow
    ``CREATE DATABASE``.

    Args:
        timeout_seconds: Connection timeout, default 3.
    """
    url = _libpq_url(os.environ.get(PG_URL_ENV_VAR) or DEFAULT_PG_ADMIN_URL)
    try:
        with psycopg.connect(url, connect_timeout=timeout_seconds) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        logger.info("PostgreSQL not reachable at %s: %s", _redact(url), exc)
        return None
    return url


def require_postgres() -> str:
    """Return the admin URL of the test PostgreSQL, or skip the calling test.

    Under CI (``CI=true``) a missing database fails the test instead of skipping it,
    so that a broken CI set-up cannot pass silently.
    """
    url = postgres_admin_url()
    if url is not None:
        return url
    wanted = os.environ.get(PG_URL_ENV_VAR) or DEFAULT_PG_ADMIN_URL
    message = f"PostgreSQL not reachable at {_redact(wanted)}: set {PG_URL_ENV_VAR}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def fresh_database(admin_url: str, purpose: str) -> Iterator[str]:
    """Create a uniquely named database, yield its URL, then drop it.

    Args:
        admin_url: ``postgresql://`` URL of a role allowed to create databases.
        purpose: Short lowercase label put into the name
            (``casework_test_<purpose>_<hex>``).

    Yields:
        The ``postgresql://`` URL of the new database (same role and host).
    """
    name = f"{_DATABASE_PREFIX}_{purpose}_{uuid.uuid4().hex[:10]}"
    _create_database(admin_url, name)
    try:
        yield (
            make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        _drop_database(admin_url, name)


def with_driver(database_url: str, driver: str) -> str:
    """Return ``database_url`` with a SQLAlchemy driver, e.g. ``postgresql+asyncpg``."""
    url = make_url(database_url).set(drivername=f"postgresql+{driver}")
    return url.render_as_string(hide_password=False)


def _create_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    logger.debug("created database %s", name)


def _drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` after ending the sessions still connected to it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    logger.debug("dropped database %s", name)


def _libpq_url(url: str) -> str:
    """``url`` without a SQLAlchemy driver (``postgresql+psycopg://`` becomes
    ``postgresql://``), as psycopg wants it; the variable may hold either form."""
    return (
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def _redact(url: str) -> str:
    """Return ``url`` with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


# Processes ----------------------------------------------------------------------------


def launch_prefect_server(database_url: str, workdir: Path) -> ServerProcess:
    """Start ``prefect server start`` on loopback without waiting for it.

    The server gets its own ``PREFECT_HOME`` under ``workdir``, analytics and the UI
    off, and ``PREFECT_API_DATABASE_CONNECTION_URL`` pointing (through asyncpg) at
    ``database_url``; it migrates that database on start.

    Args:
        database_url: ``postgresql://`` URL of an empty database for the server.
        workdir: Folder for the server's home and log.
    """
    port = free_port()
    home = workdir / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    env = _environment_without(("PREFECT_",))
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=with_driver(database_url, "asyncpg"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
    )
    command = [
        _console_script("prefect"),
        *("server", "start", "--host", LOOPBACK_HOST, "--port", str(port)),
        "--no-prompt",
    ]
    url = f"http://{LOOPBACK_HOST}:{port}"
    return launch_process(
        "prefect",
        command,
        env=env,
        workdir=workdir,
        url=url,
        health_url=f"{url}/api/health",
        database_url=database_url,
    )


def launch_mlflow_server(database_url: str, workdir: Path) -> ServerProcess:
    """Start ``mlflow server`` on loopback without waiting for it.

    One uvicorn worker, the backend store in ``database_url`` (through psycopg 3),
    artifacts proxied by the server (``--serve-artifacts``) into
    ``workdir/artifacts``, and the background job runner off (casework has no use
    for MLflow's GenAI jobs, and it would be one more process per server).

    Args:
        database_url: ``postgresql://`` URL of an empty database for the server.
        workdir: Folder for the artifacts and the log.
    """
    port = free_port()
    artifacts = workdir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    env = _environment_without(("MLFLOW_",))
    env.update(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    command = [
        _console_script("mlflow"),
        *("server", "--host", LOOPBACK_HOST, "--port", str(port), "--workers", "1"),
        *("--backend-store-uri", with_driver(database_url, "psycopg")),
        *("--artifacts-destination", str(artifacts), "--serve-artifacts"),
        *("--allowed-hosts", f"{LOOPBACK_HOST}:{port},localhost:{port}"),
    ]
    url = f"http://{LOOPBACK_HOST}:{port}"
    return launch_process(
        "mlflow",
        command,
        env=env,
        workdir=workdir,
        url=url,
        health_url=f"{url}/health",
        database_url=database_url,
    )


def wait_until_healthy(
    server: ServerProcess, timeout_seconds: float = STARTUP_TIMEOUT_SECONDS
) -> float:
    """Poll the server's health URL until it answers 200, and return the seconds taken.

    Raises:
        ServerStartError: a) the process exited; b) no 200 within ``timeout_seconds``.
            The message carries the tail of the server's log.
    """
    deadline = server.started_at + timeout_seconds
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerStartError(
                f"{server.name} server exited with code {server.process.returncode}"
                f" before becoming healthy; log tail:\n{server.log_tail()}"
            )
        last_error = _probe(server.health_url)
        if not last_error:
            server.startup_seconds = time.monotonic() - server.started_at
            logger.info(
                "%s server healthy at %s after %.1f s",
                server.name,
                server.url,
                server.startup_seconds,
            )
            return server.startup_seconds
        time.sleep(_POLL_INTERVAL_SECONDS)
    raise ServerStartError(
        f"{server.name} server at {server.health_url} not healthy after"
        f" {timeout_seconds:.0f} s (last error: {last_error}); log tail:\n"
        f"{server.log_tail()}"
    )


def stop_server(
    server: ServerProcess, timeout_seconds: float = STOP_TIMEOUT_SECONDS
) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL after a timeout."""
    process = server.process
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s server (pid %d) still running %.0f s after SIGTERM; killing it",
                server.name,
                process.pid,
                timeout_seconds,
            )

    # Whatever is left in the group: the leader past its timeout, or workers it left.
    _signal_group(process.pid, signal.SIGKILL)
    process.wait(timeout=timeout_seconds)


def launch_process(
    name: str,
    command: list[str],
    *,
    env: Mapping[str, str],
    workdir: Path,
    url: str,
    health_url: str,
    database_url: str = "",
) -> ServerProcess:
    """Start ``command`` in its own process group, logging to ``workdir/<name>.log``.

    The building block of the launchers above, public for other long-running
    processes a test wants watched and stopped the same way (``casework deploy``, a
    Prefect worker). It does not wait: follow it with :func:`wait_until_healthy`, and
    always with :func:`stop_server`.

    Args:
        name: Short label for logs and errors.
        command: Program and arguments.
        env: The complete environment of the process.
        workdir: Working directory, and folder of the log.
        url: Base URL the process serves.
        health_url: URL answering 200 once the process is ready.
        database_url: The process's own database, if any (for the record).
    """
    log_path = workdir / f"{name}.log"
    logger.info("starting %s at %s", name, url)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ServerProcess(name, url, health_url, process, log_path, database_url)


def _probe(url: str) -> str:
    """Return "" when ``url`` answers 200, else a short description of what failed."""
    try:
        with _NO_PROXY_OPENER.open(url, timeout=2) as response:
            return "" if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, urllib.error.URLError) as exc:
        return str(exc)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def free_port() -> int:
    """Return a TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        return sock.getsockname()[1]


def _console_script(name: str) -> str:
    """Return the path of console script ``name`` installed beside this Python."""
    candidate = Path(sys.executable).parent / name
    if not candidate.exists():
        raise FileNotFoundError(
            f"console script {name!r} not found next to {sys.executable};"
            " install the project's dependencies into this environment"
        )
    return str(candidate)


def _environment_without(prefixes: tuple[str, ...]) -> dict[str, str]:
    """Copy ``os.environ`` minus variables starting with any of ``prefixes``.

    Keeps a developer's own ``PREFECT_API_URL`` or ``MLFLOW_TRACKING_URI`` from
    leaking into a test server or client.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


# Context managers ---------------------------------------------------------------------


@contextlib.contextmanager
def prefect_server(
    workdir: Path, admin_url: str | None = None
) -> Iterator[ServerProcess]:
    """Run a Prefect server on a fresh database; yield it once healthy.

    Args:
        workdir: Folder for the server's home and log.
        admin_url: PostgreSQL admin URL; default :func:`require_postgres`.
    """
    with _running("prefect", launch_prefect_server, workdir, admin_url) as server:
        wait_until_healthy(server)
        yield server


@contextlib.contextmanager
def mlflow_server(
    workdir: Path, admin_url: str | None = None
) -> Iterator[ServerProcess]:
    """Run an MLflow tracking server on a fresh database; yield it once healthy.

    Args:
        workdir: Folder for the artifacts and the log.
        admin_url: PostgreSQL admin URL; default :func:`require_postgres`.
    """
    with _running("mlflow", launch_mlflow_server, workdir, admin_url) as server:
        wait_until_healthy(server)
        yield server


@contextlib.contextmanager
def running_stack(workdir: Path, admin_url: str | None = None) -> Iterator[Stack]:
    """Run a Prefect server and an MLflow server side by side; yield them when healthy.

    Both are launched before either is waited for, so their start-ups overlap.

    Args:
        workdir: Folder for both servers' files (``prefect/`` and ``mlflow/``).
        admin_url: PostgreSQL admin URL; default :func:`require_postgres`.
    """
    with contextlib.ExitStack() as stack:
        prefect = stack.enter_context(
            _running("prefect", launch_prefect_server, workdir / "prefect", admin_url)
        )
        mlflow = stack.enter_context(
            _running("mlflow", launch_mlflow_server, workdir / "mlflow", admin_url)
        )
        wait_until_healthy(prefect)
        wait_until_healthy(mlflow)
        yield Stack(prefect=prefect, mlflow=mlflow)


@contextlib.contextmanager
def _running(
    name, launch, workdir: Path, admin_url: str | None
) -> Iterator[ServerProcess]:
    """Give ``launch`` a fresh database; stop the server, then drop the database."""
    workdir.mkdir(parents=True, exist_ok=True)
    admin_url = admin_url or require_postgres()
    with fresh_database(admin_url, name) as database_url:
        server = launch(database_url, workdir)
        try:
            yield server
        finally:
            stop_server(server)
