"""Loading the Python hooks a spec names, as ``module:function`` or ``file.py:function``."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle

from casework.errors import CaseworkError, DataError, SpecError, first_line

__all__ = ["call_for_frame", "callable_name", "load_callable"]

logger = logging.getLogger(__name__)


def callable_name(function: Any) -> str:
    """``module.qualname`` of a function: how hooks are named in trusted-type lists
    and in messages."""
    return f"{function.__module__}.{function.__qualname__}"


def call_for_frame(
    function: Callable[..., Any], *args: Any, who: str, on: str = ""
) -> Any:
    """``function(*args)``, the use case's own code, which must give back a pandas
    DataFrame; any failure is one line naming ``who`` (and ``on`` what it ran).

    Raises:
        DataError: the function raised (or exited), or returned something else. A
            casework error it raises itself keeps its own message.
    """
    import pandas as pd

    try:
        frame = function(*args)
    except CaseworkError:
        raise
    except (Exception, SystemExit) as exc:  # the user's code, reported in one line
        raise DataError(
            f"{who} failed{on}: {type(exc).__name__}: {first_line(exc)}"
        ) from None
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"{who} returned {type(frame).__name__}, expected a pandas DataFrame"
        )
    return frame


def load_callable(reference: str, base_dir: Path) -> Callable[..., Any]:
    """Import the function a spec names.

    A ``file.py:function`` reference is resolved against ``base_dir`` (the spec's
    folder); anything else is imported as a module from ``sys.path``.

    Raises:
        SpecError: the reference is malformed, or the module or function is missing.
    """
    module_part, sep, function_name = reference.partition(":")
    if not sep or not module_part or not function_name:
        raise SpecError(
            f"hook {reference!r}: expected 'module:function' or 'file.py:function'"
        )
    module = _import(module_part, base_dir, reference)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise SpecError(
            f"hook {reference!r}: {module_part} has no function {function_name!r}"
        )
    return function


def _import(module_part: str, base_dir: Path, reference: str) -> Any:
    if module_part.endswith(".py"):
        return _import_file(base_dir / module_part, reference)
    try:
        return importlib.import_module(module_part)
    except ImportError as exc:
        raise SpecError(
            f"hook {reference!r}: cannot import {module_part!r}: {exc}"
        ) from None


def _import_file(path: Path, reference: str) -> Any:
    if not path.is_file():
        raise SpecError(f"hook {reference!r}: file {path} not found")
    module_name = f"casework_hook_{path.stem}_{abs(hash(path.resolve())):x}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any error in the user's file: syntax, imports, ...
        del sys.modules[module_name]
        raise SpecError(
            f"hook {reference!r}: {path} cannot be loaded: {type(exc).__name__}: "
            f"{first_line(exc)}"
        ) from None
    # Worker processes (Dask) cannot import this module by name: ship its functions
    # by value when tasks holding them are pickled.
    cloudpickle.register_pickle_by_value(module)
    return module
