"""Shared inputs of the task tests: the loops task's data, built once per session, and private caches."""

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


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private ncc cache (``$NCC_CACHE``: compiled kernels, normalised sources) for one test module."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("ncc-cache")
        patch.setenv("NCC_CACHE", str(folder))
        yield folder
