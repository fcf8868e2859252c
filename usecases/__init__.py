"""Use cases: the plug-in contract (a YAML spec plus optional hooks), their discovery,
and the built-in use cases, one folder each."""

from casework.usecases.discovery import available_usecases, load_usecase
from casework.usecases.spec import UseCaseSpec, load_spec

__all__ = ["UseCaseSpec", "available_usecases", "load_spec", "load_usecase"]
