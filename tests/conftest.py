"""Shared fixtures: a throw-away casework home and one Prefect test server per session.

The lead's branch has the same ``casework_env`` fixture; reconcile on merge.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def casework_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary CASEWORK_HOME with MLflow in SQLite there and a Prefect test server.

    One Prefect server serves the whole session: starting one takes seconds.
    """
    home = tmp_path_factory.mktemp("casework-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("CASEWORK_HOME", str(home))
    patch.setenv("PREFECT_HOME", str(home / "prefect"))
    patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    patch.delenv("PREFECT_API_URL", raising=False)

    from casework.settings import configure_environment

    configure_environment()
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        patch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
        yield home
    patch.undo()
