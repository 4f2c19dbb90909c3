"""Shared inputs of the task tests: private caches."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private ncc cache (``$NCC_CACHE``: compiled kernels, normalised sources) for one test module."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("ncc-cache")
        patch.setenv("NCC_CACHE", str(folder))
        yield folder
