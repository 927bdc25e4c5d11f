"""Hypothesis keeps its working files in a temporary folder, never in the repository."""

from __future__ import annotations

import pytest
from hypothesis.configuration import set_hypothesis_home_dir


@pytest.fixture(autouse=True, scope="session")
def hypothesis_home(tmp_path_factory):
    """Point Hypothesis's home (it caches constants even without a database) at a temp dir."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)
