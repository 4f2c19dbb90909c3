"""Where ncc keeps data sets and caches.

Data sets: ``$NCC_DATA`` when set; else ``../shared/data`` beside the checkout ncc runs from (the folder
holding ``ncc/``), when that folder exists; else ``~/.cache/ncc/data``, where missing files are downloaded.
Caches: ``$NCC_CACHE`` when set, else ``~/.cache/ncc/cache``. ``ncc doctor`` prints both.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """The data set folder (see the module docstring for the rule)."""
    return data_home_and_rule()[0]


def data_home_and_rule() -> tuple[Path, str]:
    """The data set folder, and which part of the rule chose it (for ``ncc doctor``)."""
    env = os.environ.get("NCC_DATA")
    if env:
        return Path(env).expanduser(), "$NCC_DATA"
    beside = shared_data_beside_checkout()
    if beside.is_dir():
        return beside, "../shared/data beside the checkout"
    return _user_cache() / "data", "default; $NCC_DATA unset"


def shared_data_beside_checkout() -> Path:
    """``../shared/data`` relative to the folder that holds the ``ncc`` package (a clone's root)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def cache_home() -> Path:
    """Compiled IR and processed graphs: ``$NCC_CACHE`` if set, else ``~/.cache/ncc/cache``."""
    env = os.environ.get("NCC_CACHE")
    return Path(env).expanduser() if env else _user_cache() / "cache"


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "ncc"


if __name__ == "__main__":  # run.sh and test.sh export what the command line would read
    print(data_home())
