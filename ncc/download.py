"""Data files pinned by sha256: found under the data home, or downloaded once from their public origin.

A :class:`DataFile` names a file relative to :func:`ncc.paths.data_home` (``$NCC_DATA``), the URL it
comes from and its sha256. :func:`fetch` returns the local path; when the file is absent it downloads it
under a lock file (so two processes do not download it twice), checks the digest before anything is
kept, and renames it into place, so a reader never sees a partial or wrong file.

The pins themselves live in the repository's top-level ``datasets/<name>/pins.json`` (shipped in the
wheel as the package ``ncc.datasets``), beside the README that says where each data set comes from:
:func:`pinned` reads one file's :class:`DataFile` from there, :func:`pins` the whole record.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ncc.errors import DatasetError
from ncc.fileio import atomic_write
from ncc.paths import data_home

logger = logging.getLogger(__name__)

__all__ = ["DataFile", "fetch", "pinned", "pins", "pins_file"]


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


def _datasets_folder() -> Path:
    """The ``datasets/`` folder: the package ``ncc.datasets`` (a checkout or a wheel), else the checkout's."""
    try:
        from importlib.resources import files

        folder = Path(str(files("ncc.datasets")))
        if folder.is_dir():
            return folder
    except (ImportError, TypeError, ValueError):  # not installed as a package: a bare checkout on sys.path
        pass
    return Path(__file__).resolve().parent.parent / "datasets"


def pins_file(dataset: str) -> Path:
    """The path of ``datasets/<dataset>/pins.json`` (which need not exist)."""
    return _datasets_folder() / dataset / "pins.json"


@lru_cache(maxsize=None)
def _read_pins(dataset: str) -> dict[str, Any]:
    path = pins_file(dataset)
    if "/" in dataset or "\\" in dataset or dataset in ("", ".", ".."):
        raise DatasetError(f"not a data set name: {dataset!r}", str(path))
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"no pins for data set {dataset!r}", str(path)) from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"unreadable pins: {error}", str(path)) from None
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(entry, dict) and isinstance(entry.get("url"), str) and isinstance(entry.get("sha256"), str)
            for entry in files.values()):
        raise DatasetError('expected {"files": {path: {"url": ..., "sha256": ...}}}', str(path))
    return record


def pins(dataset: str) -> dict[str, Any]:
    """The parsed ``datasets/<dataset>/pins.json``: ``{"files": {path: {"url", "sha256"}}, ...}``.

    Besides ``files`` a data set may pin other things (POJ-104: ``origin`` and ``content_sha256``).
    The result is a fresh copy; changing it changes nothing else.

    Raises:
        DatasetError: the data set has no pins file, or it is unreadable or malformed (names the file).
    """
    return json.loads(json.dumps(_read_pins(dataset)))


def pinned(dataset: str, path: str) -> DataFile:
    """The pinned :class:`DataFile` of one file of a data set.

    Args:
        dataset: the folder under ``datasets/``, e.g. ``devmap``.
        path: the file relative to the data home, e.g. ``devmap/cgo17-amd.csv``.

    Raises:
        DatasetError: the data set or the entry is not pinned (names the pins file).
    """
    entry = _read_pins(dataset)["files"].get(path)
    if entry is None:
        raise DatasetError(f"{path!r} is not pinned for data set {dataset!r}", str(pins_file(dataset)))
    return DataFile(path, entry["url"], entry["sha256"])
