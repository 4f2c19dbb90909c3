"""pyproject.toml reads without setuptools' deprecation warnings, with the build requirement that reads it."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


def test_license_is_an_spdx_string_that_setuptools_reads_without_warnings():
    setuptools = pytest.importorskip("setuptools")
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    config = tomllib.loads(PYPROJECT.read_text())
    assert config["project"]["license"] == "BSD-3-Clause"
    required = re.fullmatch(r"setuptools>=(\d+)", config["build-system"]["requires"][0])
    assert required and int(required.group(1)) >= 77, "the SPDX license string needs setuptools 77"
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} here; builds get >= 77 from [build-system]")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        distribution = apply_configuration(Distribution(), PYPROJECT)
    assert distribution.metadata.license_expression == "BSD-3-Clause"
    assert [str(w.message).splitlines()[0] for w in caught] == []
