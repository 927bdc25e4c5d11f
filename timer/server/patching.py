"""What a patch of daphne, Twisted or autobahn declares, and the checks run before applying it.

A :class:`Patch` names the releases it was written against and every private name it touches.
Before it changes anything, :func:`problems` compares the installed versions with those ranges
and looks each name up; :func:`apply` then either applies the patch or, if anything is off,
leaves the library alone and logs why. The same :func:`problems` feeds the system checks
(``timer/config/checks.py``): a required patch that cannot apply is an error at start-up, an optional
one a warning. Nothing fails later, in the middle of serving.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

logger = logging.getLogger(__name__)

MARK = "wstime_patch"  # attribute on a replacement function: the name of the patch that made it


@dataclass(frozen=True)
class Need:
    """One name a patch touches, and whether the installed library has it."""

    where: str  # e.g. "daphne.server.Server.handle_reply"
    present: bool


def attribute(owner: Any, name: str) -> Need:
    """A class or module attribute the patch reads, wraps or replaces."""
    return Need(f"{_qualname(owner)}.{name}", hasattr(owner, name))


def assigned_in(function: Any, name: str) -> Need:
    """An instance attribute the library sets (``self.name = ...``) in ``function``."""
    code = getattr(function, "__code__", None)
    present = code is not None and name in code.co_names
    return Need(f"{_qualname(function)} sets self.{name}", present)


def calls(function: Any, name: str) -> Need:
    """A method the library calls (``obj.name(...)``) in ``function``, which the patch wraps."""
    code = getattr(function, "__code__", None)
    present = code is not None and name in code.co_names
    return Need(f"{_qualname(function)} calls {name}", present)


def key_in(function: Any, key: str) -> Need:
    """A dictionary key (a string constant) the library writes in ``function``."""
    code = getattr(function, "__code__", None)
    present = code is not None and key in code.co_consts
    return Need(f"{_qualname(function)} writes the key {key!r}", present)


def parameter(function: Any, name: str) -> Need:
    """A keyword parameter of a library function the patch passes."""
    try:
        present = name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        present = False
    return Need(f"{_qualname(function)} takes {name}=", present)


def _qualname(owner: Any) -> str:
    module = getattr(owner, "__module__", None) or getattr(owner, "__name__", "")
    name = getattr(owner, "__qualname__", None)
    return f"{module}.{name}" if name and module != name else str(module or owner)


@dataclass(frozen=True)
class Patch:
    """A change to a dependency's classes, with what it needs to be safe to apply."""

    name: str
    check_id: str  # timer.E0xx when required, timer.W0xx when optional
    required: bool  # behaviour or security (True), or only performance (False)
    versions: Mapping[str, str]  # distribution name -> the release range it was written for
    needs: Callable[[], Sequence[Need]]  # imports lazily: daphne chooses Twisted's reactor first
    install: Callable[[], None]  # idempotent
    module: str  # where its docstring explains it

    @property
    def is_installed(self) -> bool:
        """Whether :func:`apply` installed it in this process."""
        return self.name in _installed


_installed: set[str] = set()


def installed_version(distribution: str) -> str | None:
    """The installed release of ``distribution``, or None if it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def problems(
    patch: Patch, *, version_of: Callable[[str], str | None] = installed_version
) -> list[str]:
    """Everything that makes ``patch`` unsafe to apply here; empty if it may be applied."""
    found = []
    for distribution, allowed in patch.versions.items():
        version = version_of(distribution)
        if version is None:
            found.append(f"{distribution} is not installed")
            continue
        try:
            inside = Version(version) in SpecifierSet(allowed)
        except (InvalidVersion, InvalidSpecifier):
            inside = False
        if not inside:
            found.append(f"{distribution} {version} is outside the tested range {allowed}")
    try:
        needs = patch.needs()
    except Exception as exc:  # noqa: BLE001 - whatever an upgrade broke is reported, not raised
        found.append(f"cannot look up the names it patches: {exc!r}")
    else:
        found.extend(f"{need.where} is missing" for need in needs if not need.present)
    return found


def hint(patch: Patch) -> str:
    """How to fix a patch that cannot apply: the tested releases, and where it is explained."""
    pins = ", ".join(f"{name}{allowed}" for name, allowed in patch.versions.items())
    return (
        f"Install the tested releases ({pins}; pyproject.toml and requirements/ pin them), "
        f"or update {patch.module} to the new release and its tests/server canaries."
    )


def apply(patch: Patch, **kwargs: Any) -> bool:
    """Install ``patch`` if nothing is off; otherwise log why and leave the library alone.

    Returns whether the patch is installed. Idempotent.
    """
    if patch.is_installed:
        return True
    found = problems(patch, **kwargs)
    if found:
        effect = (
            "the node runs WITHOUT it" if patch.required else "skipped; the node works, only slower"
        )
        logger.log(
            logging.ERROR if patch.required else logging.WARNING,
            "server patch %r not applied (%s): %s; %s. %s",
            patch.name,
            patch.check_id,
            "; ".join(found),
            effect,
            hint(patch),
        )
        return False
    patch.install()
    _installed.add(patch.name)
    return True


def mark(replacement: Any, original: Any, patch_name: str) -> Any:
    """Label ``replacement`` as ``patch_name``'s wrapper of ``original``; return it."""
    setattr(replacement, MARK, patch_name)
    replacement.__wrapped__ = original
    return replacement


def marked(function: Any, patch_name: str) -> bool:
    """Whether a patch named ``patch_name`` already wraps ``function`` (at any depth)."""
    seen = 0
    while function is not None and seen < 32:  # a chain of wrappers, each naming the next
        if getattr(function, MARK, None) == patch_name:
            return True
        function, seen = getattr(function, "__wrapped__", None), seen + 1
    return False
