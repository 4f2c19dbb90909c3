"""Data files pinned by sha256: found under the data home, or downloaded once from their public origin.

A :class:`DataFile` names a file relative to :func:`ncc.paths.data_home` (``$NCC_DATA``), the URL it
comes from and its sha256. :func:`fetch` returns the local path; when the file is absent it downloads it
under a lock file (so two processes do not download it twice), checks the digest before anything is
kept, and renames it into place, so a reader never sees a partial or wrong file.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ncc.errors import DatasetError
from ncc.fileio import atomic_write
from ncc.paths import data_home

logger = logging.getLogger(__name__)

__all__ = ["DataFile", "fetch"]


@dataclass(frozen=True)
class DataFile:
    """A public data file.

    Attributes:
        path: where it lives under the data home, e.g. ``devmap/cgo17-amd.csv``.
        url: its public origin.
        sha256: the digest the download must have.
    """

    path: str
    url: str
    sha256: str


def fetch(item: DataFile, root: str | Path | None = None, timeout_s: float = 120.0) -> Path:
    """The local path of a data file, downloading it first when it is absent.

    A file already present is trusted as it is (``$NCC_DATA`` may be read-only and hold the data set's
    own copy); only downloads are checked against the pinned digest.

    Args:
        item: the file.
        root: the data home (default :func:`ncc.paths.data_home`).
        timeout_s: network timeout.

    Raises:
        DatasetError: the download failed or its sha256 differs (nothing is written then).
    """
    target = Path(root) if root is not None else data_home()
    path = target / item.path
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():  # another process finished it while we waited
            return path
        logger.info("downloading %s from %s", item.path, item.url)
        try:
            with urllib.request.urlopen(item.url, timeout=timeout_s) as response:
                data = response.read()
        except OSError as error:
            raise DatasetError(f"cannot download from {item.url}: {error}", str(path)) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != item.sha256:
            raise DatasetError(f"download from {item.url} has sha256 {digest}, expected {item.sha256}", str(path))
        atomic_write(path, data)
    return path
