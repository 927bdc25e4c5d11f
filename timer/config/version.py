"""The running wstime version, for the health JSON."""

from __future__ import annotations

import functools
import importlib.metadata
import tomllib
from pathlib import Path

_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@functools.cache
def version() -> str:
    """Return the installed package's version, else the checkout's pyproject.toml's, else '?'."""
    try:
        return importlib.metadata.version("wstime")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return str(tomllib.loads(_PYPROJECT.read_text())["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "?"
