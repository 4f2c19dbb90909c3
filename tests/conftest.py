"""Test options and helpers shared by every test folder."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (full data sets, long runs)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: give --runslow to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


#: System clangs that are optional by design: the package is pip-only and its default compiler is the clang of
#: the ``ziglang`` wheel. CI installs clang-14 for the cross-checks (.ci/run), so there its absence fails.
OPTIONAL_SYSTEM_CLANGS = ("clang-14", "clang-19")
CI_SYSTEM_CLANGS = ("clang-14",)


@pytest.fixture(scope="session")
def system_clang():
    """``system_clang(name)``: the path of an optional system clang, checked to be usable by ncc.

    Skips the test only when no executable of that name is on ``$PATH`` (the one condition under which the
    optional tool is absent by design). A clang that is there but does not work fails the test: ncc's
    toolchain check raises.
    """
    checked: dict[str, str] = {}

    def find(name: str) -> str:
        assert name in OPTIONAL_SYSTEM_CLANGS, f"{name} is not an optional clang; the tests must not skip it"
        if name not in checked:
            path = shutil.which(name)
            if path is None:
                if os.environ.get("CI") and name in CI_SYSTEM_CLANGS:
                    pytest.fail(f"{name} is missing on CI: .ci/run installs it with apt-get")
                pytest.skip(f"{name} is not installed (optional; ./test.sh does not install it, .ci/run does)")
            from ncc.frontend.toolchain import find_toolchain

            find_toolchain(path)  # raises ToolchainError for a clang that cannot run or is too old
            checked[name] = path
        return checked[name]

    return find
