"""The exceptions casework raises for problems a user can fix.

Each message is one line: it names the file, field, column or value at fault and
says what was expected. The CLI prints it as it is and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "CaseworkError",
    "ClusterError",
    "DataError",
    "RegistryError",
    "SchemaError",
    "SpecError",
    "TrackingError",
    "UseCaseNotFoundError",
    "first_line",
    "utf8_break",
]


class CaseworkError(Exception):
    """A problem with the input or the setup that the user can fix."""


class SpecError(CaseworkError):
    """A use-case spec is missing, unreadable or invalid."""


class UseCaseNotFoundError(CaseworkError):
    """No use case goes by the name that was asked for."""


class DataError(CaseworkError):
    """The data of a use case cannot be read or does not fit its spec."""


class SchemaError(DataError):
    """Rows to score do not match the columns the model was trained on."""


class TrackingError(CaseworkError):
    """The MLflow tracking server or the Prefect API cannot be reached."""


class RegistryError(CaseworkError):
    """The MLflow model registry has no model, version or alias as asked."""


class ClusterError(CaseworkError):
    """A task runner cannot be set up: an unknown runner or an unreachable Dask cluster."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (at most ``limit`` characters), or
    its type's name when it has none: third-party errors shown in one line."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def utf8_break(data: bytes) -> tuple[int, int] | None:
    """Where ``data`` stops being UTF-8 text: the line (from 1) and the byte found
    there; None when it is UTF-8 throughout (a byte order mark allowed)."""
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return data.count(b"\n", 0, exc.start) + 1, data[exc.start]
    return None
