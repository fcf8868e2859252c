"""Shared fixtures: a throw-away casework home with one Prefect test server per session,
the test PostgreSQL, and real churn rows."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
CHURN_CSV = REPO / "usecases" / "churn" / "data" / "telco_churn.csv"

# One variable names the test PostgreSQL for every test that needs it.
PG_URL_ENV_VAR = "CASEWORK_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


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


@pytest.fixture(scope="session")
def churn_model(casework_env: Path) -> dict[str, Any]:
    """The summary of one training run of churn (logistic regression), registered."""
    from casework.flows.train import train

    return train(usecase="churn", candidates=["logistic_regression"])


@pytest.fixture(scope="module")
def fresh_registry(
    casework_env: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty MLflow tracking store and registry for one test module, so that
    version numbers and aliases there depend on that module alone."""
    import mlflow

    uri = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    patch.undo()
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The SQLAlchemy URL of the test PostgreSQL; skips (fails under CI) without it."""
    import sqlalchemy as sa

    url = sa.engine.make_url(os.environ.get(PG_URL_ENV_VAR) or DEFAULT_PG_URL)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    text = url.render_as_string(hide_password=False)
    try:
        engine = sa.create_engine(text, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        message = (
            f"PostgreSQL not reachable at {url.render_as_string()} ({type(exc).__name__}); "
            f"set {PG_URL_ENV_VAR} to a database this test may create schemas in"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return text


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A uniquely named schema in the test PostgreSQL, dropped afterwards."""
    import sqlalchemy as sa

    name = f"casework_t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(pg_url)
    quoted = engine.dialect.identifier_preparer.quote(name)
    with engine.begin() as connection:
        connection.execute(sa.DDL(f"CREATE SCHEMA {quoted}"))
    try:
        yield name
    finally:
        with engine.begin() as connection:
            connection.execute(sa.DDL(f"DROP SCHEMA IF EXISTS {quoted} CASCADE"))
        engine.dispose()
