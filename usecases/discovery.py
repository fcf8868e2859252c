"""Finding use cases: built-ins under ``usecases/``, a spec given by path, and
installed packages that declare one in the entry-point group ``casework.usecases``.

An installed package declares a use case in its own ``pyproject.toml``::

    [project.entry-points."casework.usecases"]
    returns = "my_package.returns:SPEC_PATH"

where the object is a path to a YAML spec, or a callable that returns one.
"""

from __future__ import annotations

import difflib
import logging
from importlib.metadata import entry_points
from pathlib import Path

from casework.errors import SpecError, UseCaseNotFoundError
from casework.usecases.spec import UseCaseSpec, load_spec

__all__ = [
    "ENTRY_POINT_GROUP",
    "available_usecases",
    "load_usecase",
    "usecase_label",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "casework.usecases"
BUILTIN_DIR = Path(__file__).parent
SPEC_FILE = "usecase.yaml"


def available_usecases() -> dict[str, Path]:
    """Every use case casework can find by name, mapped to its spec file.

    Built-ins come first; an installed plug-in with the same name as a built-in is
    ignored with a warning.
    """
    found = _builtin_usecases()
    for name, path in _plugin_usecases().items():
        if name in found:
            logger.warning(
                "Use case %r from a plug-in is shadowed by the built-in", name
            )
            continue
        found[name] = path
    return found


def load_usecase(name_or_path: str | Path) -> UseCaseSpec:
    """Load a use case by name, or from a YAML file when given a path.

    Raises:
        UseCaseNotFoundError: no use case of that name; the message lists close matches.
        SpecError: the spec file is invalid.
    """
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        return load_spec(Path(text))
    folder = Path(text)
    if (folder / SPEC_FILE).is_file() or (folder.is_dir() and "/" in text):
        return load_spec(folder / SPEC_FILE)  # a use case's folder

    known = available_usecases()
    if text not in known:
        raise UseCaseNotFoundError(_unknown_message(text, sorted(known)))
    spec = load_spec(known[text])
    if spec.name != text:
        raise SpecError(
            f"{known[text]}: field 'name' is {spec.name!r}, expected {text!r}"
        )
    return spec


def usecase_label(name_or_path: str | Path) -> str:
    """A short name for a use case reference, without reading its spec: the name
    itself, or for a path the spec file's stem (its folder's name when the file is
    the usual ``usecase.yaml``). Flow runs are named with it."""
    text = str(name_or_path)
    path = Path(text)
    if not text.endswith((".yaml", ".yml")):
        return path.name or text
    return path.parent.name if path.name == SPEC_FILE else path.stem


def _builtin_usecases() -> dict[str, Path]:
    specs = sorted(BUILTIN_DIR.glob(f"*/{SPEC_FILE}"))
    return {path.parent.name: path for path in specs}


def _plugin_usecases() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = entry.load()
            path = Path(target() if callable(target) else target)
        except Exception as exc:  # a broken plug-in must not break the others
            logger.warning("Skipping use-case plug-in %r: %s", entry.name, exc)
            continue
        found[entry.name] = path
    return found


def _unknown_message(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    listing = ", ".join(known) or "none"
    return (
        f"unknown use case {name!r}: {hint}known use cases: {listing} "
        "(or give the path to a usecase.yaml)"
    )
