"""The command's own Prefect API, how the command ends, and the console it leaves."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from casework.errors import TrackingError
from casework.runtime import LocalPrefectAPI, _ConsoleFilter, start_local_api

from .helpers import CASEWORK, run_casework, wait_until


@pytest.fixture
def no_prefect_server(monkeypatch, tmp_path):
    """PREFECT_API_URL unset (and restored afterwards), Prefect's home in tmp_path."""
    monkeypatch.setenv("PREFECT_API_URL", "set so that monkeypatch restores it")
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    return tmp_path


class TestLocalAPI:
    def test_answers_on_loopback_and_points_prefect_at_itself(self, no_prefect_server):
        api = start_local_api()
        try:
            api.wait_until_ready(timeout=120)

            assert os.environ["PREFECT_API_URL"] == api.url
            assert api.url.startswith("http://127.0.0.1:")
            with urllib.request.urlopen(f"{api.url}/health", timeout=5) as response:
                assert response.status == 200
            home = no_prefect_server / "prefect"
            assert _processes_with_prefect_home(home) == [api.process.pid]
        finally:
            api.stop()
        assert api.process.poll() is not None
        assert _processes_with_prefect_home(home) == []

    def test_a_named_server_is_used_instead(self, monkeypatch):
        monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")

        assert start_local_api() is None

    def test_a_server_that_cannot_start_is_reported_with_its_reason(
        self, no_prefect_server, monkeypatch
    ):
        # A database nobody listens on: the server fails while migrating it
        monkeypatch.setenv(
            "PREFECT_API_DATABASE_CONNECTION_URL",
            "postgresql+asyncpg://postgres@127.0.0.1:1/nothing",
        )
        api = start_local_api()
        try:
            with pytest.raises(TrackingError) as raised:
                api.wait_until_ready(timeout=120)
        finally:
            api.stop()

        message = str(raised.value)
        assert "Prefect's local API exited with code" in message
        assert "ConnectionRefusedError" in message
        assert str(api.log_path) in message
        assert "\n" not in message


class TestFlowSettings:
    def test_flow_runs_on_the_local_api_send_no_heartbeats(
        self, casework_env, monkeypatch
    ):
        from prefect import flow
        from prefect.flow_engine import FlowRunEngine

        beats = []
        monkeypatch.setattr(
            FlowRunEngine,
            "_emit_flow_run_heartbeat",
            lambda engine, *args: beats.append(engine.flow_run.name),
        )

        @flow(flow_run_name="{name}")
        def tiny(name: str) -> int:
            return 1

        api = LocalPrefectAPI(None, os.environ["PREFECT_API_URL"], Path("log"), 0)
        with api.flow_settings():
            tiny("local")
        tiny("lasting")

        # A lasting server gets Prefect's heartbeat from the run's first moment
        assert beats == ["lasting"]


class TestConsoleFilter:
    def _record(self, message: str) -> logging.LogRecord:
        return logging.LogRecord("prefect", logging.INFO, "", 0, message, None, None)

    def test_drops_links_to_the_local_api_only(self):
        console = _ConsoleFilter("http://127.0.0.1:41234/api")

        local = self._record("View at http://127.0.0.1:41234/runs/flow-run/1")
        server = self._record("View at http://prefect.internal:4200/runs/flow-run/1")
        assert not console.filter(local)
        assert console.filter(server)

    def test_drops_the_workers_draining_at_exit(self):
        console = _ConsoleFilter(None)

        draining = self._record("Still processing items: 3 items remaining...")
        assert not console.filter(draining)
        assert console.filter(self._record("Finished in state Completed()"))


class TestCommandEnd:
    def test_a_run_exits_zero_without_dead_links_and_stops_its_api(self, tmp_path):
        completed = run_casework(
            "run",
            "churn",
            "--candidates",
            "logistic_regression",
            "--no-register",
            home=tmp_path,
            timeout=300,
        )

        assert completed.returncode == 0, completed.stderr
        assert "casework run churn" in completed.stdout
        assert "View at" not in completed.stdout + completed.stderr
        assert "Traceback" not in completed.stderr
        assert _processes_with_prefect_home(tmp_path / "prefect") == []

    def test_a_failing_command_keeps_its_exit_code(self, tmp_path):
        completed = run_casework("run", "no_such_usecase", home=tmp_path)

        assert completed.returncode == 1
        assert completed.stderr.startswith("error:")


class TestStoppedBySignal:
    @pytest.mark.parametrize(
        "stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=str
    )
    def test_a_signal_ends_the_run_like_ctrl_c_and_stops_its_api(self, tmp_path, stop):
        command, output = _start_training(tmp_path)
        wait_until(lambda: "Beginning flow run" in output.read_text(), 240)

        command.send_signal(stop)
        command.wait(timeout=120)

        lines = output.read_text().splitlines()
        assert command.returncode == 128 + stop, lines[-20:]
        said = "interrupted" if stop == signal.SIGINT else f"stopped by {stop.name}"
        assert lines[-1] == said
        assert not any("Traceback" in line for line in lines)
        wait_until(lambda: _processes_with_prefect_home(tmp_path / "prefect") == [], 10)

    def test_the_api_stops_when_the_command_is_killed_outright(self, tmp_path):
        command, _ = _start_training(tmp_path)
        wait_until(lambda: _processes_with_prefect_home(tmp_path / "prefect"), 240)

        command.kill()
        command.wait(timeout=60)

        wait_until(lambda: _processes_with_prefect_home(tmp_path / "prefect") == [], 30)

    def test_a_library_error_caused_by_the_stop_is_reported_as_the_stop(self, tmp_path):
        probe = tmp_path / "probe.py"
        probe.write_text(_STOP_INSIDE_A_LIBRARY)

        completed = subprocess.run(
            [sys.executable, str(probe)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert completed.returncode == 143
        assert completed.stderr == "stopped by SIGTERM\n"


# A command whose library turns the KeyboardInterrupt of a SIGTERM into its own error.
_STOP_INSIDE_A_LIBRARY = """
import os, signal, time
import casework.cli as cli

def command():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    except KeyboardInterrupt:
        raise ValueError("Error calling function `_ser_model`: KeyboardInterrupt")

cli.app = command
cli.main()
"""


def _start_training(home: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``casework run churn`` started in the background, its output going to a file."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "MLFLOW_", "CASEWORK_"))
    }
    env.update(CASEWORK_HOME=str(home))
    output = home / "output.txt"
    with output.open("wb") as sink:
        command = subprocess.Popen(
            [CASEWORK, "run", "churn", "--candidates", "logistic_regression"],
            env=env,
            cwd=home,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return command, output


def _processes_with_prefect_home(home: Path) -> list[int]:
    """Processes of this machine whose environment points PREFECT_HOME at ``home``."""
    wanted = f"PREFECT_HOME={home}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if wanted in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone already, or not ours to read
            continue
    return found
