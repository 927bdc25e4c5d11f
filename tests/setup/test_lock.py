"""The lock files agree with pyproject.toml (a changed dependency needs ``make lock``)."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from localcluster.processes import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}"
    r"(?: \\)?\n)+)",
    re.M,
)
LOCKS = {
    "requirements/node.txt": [],
    "requirements/dev.txt": ["test", "bench"],
}


def pins(path: str) -> dict[str, str]:
    """Every ``name==version`` of a lock file, each with at least one hash."""
    text = (REPO / path).read_text()
    found = {canonicalize_name(name): version for name, version, _ in PIN.findall(text)}
    unhashed = [
        line
        for line in text.splitlines()
        if "==" in line
        and not line.startswith("#")
        and canonicalize_name(line.split("==")[0]) not in found
    ]
    assert unhashed == [], f"{path}: pins without hashes"
    return found


@pytest.mark.parametrize("path, extras", LOCKS.items())
def test_lock__pins_every_dependency_within_its_bounds(path, extras):
    """Each requirement of pyproject.toml is pinned, with hashes, to a release it allows."""
    locked = pins(path)
    requirements = [Requirement(text) for text in PROJECT["dependencies"]]
    for extra in extras:
        requirements += [Requirement(text) for text in PROJECT["optional-dependencies"][extra]]
    problems = []
    for requirement in requirements:
        if requirement.marker and not requirement.marker.evaluate():
            continue
        version = locked.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement} (locked: {version})")
    assert problems == [], f"{path} is out of date, run `make lock`: {problems}"


def test_lock__node_pins_are_the_tested_ones():
    """The production lock pins each package to the release the tests run on."""
    node, dev = pins("requirements/node.txt"), pins("requirements/dev.txt")
    assert {
        name: (version, dev.get(name)) for name, version in node.items() if dev.get(name) != version
    } == {}
