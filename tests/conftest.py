"""Shared fixtures: a throw-away casework home and one Prefect test server per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
CHURN_CSV = REPO / "usecases" / "churn" / "data" / "telco_churn.csv"


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


@pytest.fixture(scope="session")
def churn_frame() -> pd.DataFrame:
    """The real Telco churn rows, as shipped with the churn use case."""
    return pd.read_csv(CHURN_CSV)


@pytest.fixture
def churn_sample(churn_frame: pd.DataFrame) -> pd.DataFrame:
    """1,200 real churn rows, drawn reproducibly."""
    return churn_frame.sample(n=1200, random_state=7).reset_index(drop=True)
