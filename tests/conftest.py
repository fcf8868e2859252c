"""Shared fixtures: one Prefect test harness per session, the test PostgreSQL, and a
churn model trained once on the real CSV.

NOTE: a minimal stand-in for the lead's ``casework_env`` fixture in main; the two
are to be reconciled on merge.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_URL_ENV_VAR = "CASEWORK_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHURN_CSV = (
    Path(__file__).parents[1] / "usecases" / "churn" / "data" / "telco_churn.csv"
)


@pytest.fixture(scope="session")
def casework_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """CASEWORK_HOME and PREFECT_HOME in temporary folders, and Prefect's harness."""
    home = tmp_path_factory.mktemp("casework-home")
    saved = {k: os.environ.get(k) for k in ("CASEWORK_HOME", "PREFECT_HOME")}
    os.environ["CASEWORK_HOME"] = str(home)
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from casework.settings import configure_environment

    configure_environment()
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def churn_model(casework_env: Path) -> dict[str, Any]:
    """The summary of one training run of churn (logistic regression), registered."""
    from casework.flows.train import train

    return train(usecase="churn", candidates=["logistic_regression"])


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


@pytest.fixture(scope="session")
def churn_rows() -> Any:
    """The real churn CSV as read by pandas."""
    import pandas as pd

    return pd.read_csv(CHURN_CSV)
