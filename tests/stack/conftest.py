"""Fixtures of the real-server tests: a Prefect and an MLflow server on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import servers


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Stack]:
    """Both servers, started once per test module (so each module's registry is its own)."""
    admin_url = servers.require_postgres()
    with servers.running_stack(tmp_path_factory.mktemp("stack"), admin_url) as running:
        yield running
