"""Tests of casework.tasks.track: connecting to the tracking store."""

from __future__ import annotations

import os
import subprocess
import sys

# Connects, then imports what logging a model imports while another thread opens and
# closes warnings.catch_warnings() blocks, as scikit-learn does in a plots worker.
_CONCURRENT_IMPORT = """
import threading
import time
import warnings

from casework.tasks import track

track.connect("demo")

done = threading.Event()


def like_scikit_learn():
    while not done.is_set():
        with warnings.catch_warnings():
            time.sleep(0.001)


worker = threading.Thread(target=like_scikit_learn)
worker.start()
import mlflow.pyfunc  # noqa: E402, F401
import mlflow.sklearn  # noqa: E402, F401

done.set()
worker.join()
"""


def test_mlflow_import_warnings_stay_muted_when_threads_run_beside(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")

    completed = subprocess.run(
        [sys.executable, "-c", _CONCURRENT_IMPORT],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    assert "AnyType" not in completed.stderr
    assert "\x1b[" not in completed.stderr


class TestOpenStoreEarly:
    def test_opens_the_store_the_flow_connects_to(self, tmp_path, monkeypatch):
        import sqlite3

        from casework.tasks import track

        database = tmp_path / "mlflow.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")

        track.open_store_early().join(timeout=120)

        with sqlite3.connect(database) as opened:
            tables = {
                row[0] for row in opened.execute("select name from sqlite_master")
            }
        assert {"experiments", "runs"} <= tables

    def test_a_store_that_cannot_open_is_left_for_connect_to_report(
        self, tmp_path, monkeypatch
    ):
        import threading

        from casework.tasks import track

        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker / 'mlflow.db'}")
        raised = []
        monkeypatch.setattr(threading, "excepthook", raised.append)

        track.open_store_early().join(timeout=120)

        assert raised == []
