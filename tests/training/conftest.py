"""Shared inputs of the training tests: the loops task's data, built once per session."""

from __future__ import annotations

import pytest
from loops_helpers import LOOPS_OPTIONS


@pytest.fixture(scope="session")
def loops_cache(tmp_path_factory):
    """A cache folder holding the compiled loops programs and processed datasets for LOOPS_OPTIONS."""
    from ncc.training import get_task, load_config

    cache = tmp_path_factory.mktemp("ncc-cache")
    config = load_config(None, {"task": "loops", "data.cache_dir": str(cache), "progress": False,
                                **{f"task.{k}": v for k, v in LOOPS_OPTIONS.items()}})
    get_task("loops").prepare(config, progress=False)
    return cache
