"""The layout's rules hold, and the checks that enforce them in ``make test`` can fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CODE_PACKAGES = ("core", "config", "node", "health", "sessions", "web", "server")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the code and of its import rules, to break on purpose."""
    for folder in ("timer", "wstime"):
        shutil.copytree(
            REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(where), "PATH": ""},
    )


def append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_layout__import_rules_hold_on_the_code():
    """The pure core imports nothing impure, and no package or module imports in a cycle."""
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_layout__a_framework_import_in_the_core_breaks_the_build(checkout: Path):
    """``import django`` in a pure module is reported, naming the module."""
    append(checkout / "timer" / "core" / "wheel.py", "import django  # noqa")
    result = lint_imports(checkout)
    assert result.returncode != 0
    assert "pure core imports no framework" in result.stdout and "BROKEN" in result.stdout
    assert "timer.core.wheel -> django" in result.stdout


def test_layout__an_import_cycle_between_packages_breaks_the_build(checkout: Path):
    """The node importing the web endpoints (which import the node) is a reported cycle."""
    append(checkout / "timer" / "node" / "counters.py", "from ..web import page_views  # noqa")
    result = lint_imports(checkout)
    assert result.returncode != 0
    assert "No import cycles" in result.stdout and "BROKEN" in result.stdout
    assert ".node -> .web" in result.stdout or ".web -> .node" in result.stdout


@pytest.mark.parametrize("package", CODE_PACKAGES)
def test_layout__tests_mirror_the_code_packages(package: str):
    """Each package of timer/ has its own folder of unit tests."""
    assert (REPO / "timer" / package / "__init__.py").exists()
    assert list((REPO / "tests" / package).glob("test_*.py")), f"tests/{package}/ has no tests"


def code_map() -> str:
    readme = (REPO / "README.md").read_text()
    start = readme.index("### Code map")
    return readme[start : readme.index("\n## ", start)]


def test_layout__the_readme_code_map_names_every_module():
    """Each module of timer/ (migrations and __init__ aside) is named in the code map."""
    text = code_map()
    modules = [
        path
        for path in (REPO / "timer").rglob("*.py")
        if path.name != "__init__.py"
        and "migrations" not in path.parts
        and "management" not in path.parts
    ]
    missing = [str(path.relative_to(REPO)) for path in modules if path.name not in text]
    assert not missing, f"not in the README's code map: {missing}"


def test_layout__every_path_in_the_code_map_exists():
    """Paths the code map names (``timer/...``, ``tests/...``) are in the tree."""
    import re

    paths = set(re.findall(r"`((?:timer|tests|wstime)/[\w/.]+?)`", code_map()))
    assert paths, "the code map names no path"
    missing = sorted(path for path in paths if not (REPO / path).exists())
    assert not missing, f"the code map names paths that do not exist: {missing}"
