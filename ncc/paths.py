"""Where ncc keeps data sets and caches."""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """Data sets: ``$NCC_DATA`` if set, else ``~/.cache/ncc/data``."""
    env = os.environ.get("NCC_DATA")
    return Path(env).expanduser() if env else _user_cache() / "data"


def cache_home() -> Path:
    """Compiled IR and processed graphs: ``$NCC_CACHE`` if set, else ``~/.cache/ncc/cache``."""
    env = os.environ.get("NCC_CACHE")
    return Path(env).expanduser() if env else _user_cache() / "cache"


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "ncc"
