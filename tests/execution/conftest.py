"""Helpers of the execution tests: C programs compiled with ncc's own clang into native executables."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncc.frontend.toolchain import find_toolchain


@pytest.fixture(scope="session")
def native(tmp_path_factory):
    """``native(c_source) -> Path``: the source linked into an executable with ncc's toolchain (no profile runtime)."""
    from ncc.execution.profile import link_executable
    from ncc.frontend import compile

    folder = tmp_path_factory.mktemp("native")
    made: dict[str, Path] = {}

    def build(source: str) -> Path:
        if source not in made:
            module = compile(source, language="c", opt_level=0)
            made[source] = link_executable(module.text, folder / f"program{len(made)}", "c", "0",
                                           find_toolchain(), runtime=False)
        return made[source]

    return build
