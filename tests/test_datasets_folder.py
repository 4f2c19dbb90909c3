"""The top-level ``datasets/`` folder: one card and one pins file per data set, read by ncc.download.pinned.

The digests are checked against the real files under ``$NCC_DATA`` (default ``../shared/data`` beside the
repository); a pinned file that is absent there is reported as skipped, by name.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

import ncc.download as download
from ncc.download import DataFile, pinned, pins, pins_file
from ncc.errors import DatasetError

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "datasets"
NAMES = ("devmap", "threadcoarsening", "inst2vec", "poj104", "llvm-test-suite")
DATA = Path(os.environ.get("NCC_DATA") or REPO.parent / "shared" / "data")


def _all_pinned() -> list[tuple[str, str, str]]:
    """(data set, path under the data home, sha256) of every pinned file, downloadable or local."""
    found = []
    for name in NAMES:
        record = json.loads((DATASETS / name / "pins.json").read_text())
        for section in ("files", "local_files"):
            for path, entry in record.get(section, {}).items():
                found.append((name, path, entry["sha256"]))
    return found


def test_every_data_set_has_a_card_and_pins():
    assert {p.name for p in DATASETS.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))} == set(NAMES)
    for name in NAMES:
        readme = (DATASETS / name / "README.md").read_text(encoding="utf-8")
        assert readme.startswith(f"# {name}") and len(readme.splitlines()) > 20
        record = json.loads((DATASETS / name / "pins.json").read_text(encoding="utf-8"))
        assert isinstance(record["files"], dict)
        for path, entry in record["files"].items():
            assert path.startswith(f"{name}/") and entry["url"].startswith("https://")
            assert len(entry["sha256"]) == 64 and int(entry["sha256"], 16) >= 0
        assert pins(name) == record
        assert pins_file(name).samefile(DATASETS / name / "pins.json")


def test_pinned_returns_the_data_file():
    item = pinned("devmap", "devmap/cgo17-amd.csv")
    assert item == DataFile(
        "devmap/cgo17-amd.csv",
        "https://raw.githubusercontent.com/ChrisCummins/paper-end2end-dl/df6fa690cbf18bdcab23f26c5832f36884f037b5"
        "/data/case-study-a/cgo17-amd.csv",
        "0076271192aa9a0a7c21aa9a637e34cd4460f8e21e756215dd23ffb2ae62dc62")
    assert pins("poj104")["content_sha256"] == "ea5cc62d8a1e9a6e2d18296403e044b50dd1f2b3675291dd6ad89f62d80c749b"
    copy = pins("devmap")
    copy["files"].clear()
    assert pinned("devmap", "devmap/cgo17-amd.csv") == item  # the result was a copy


def test_an_unknown_entry_or_data_set_is_a_dataset_error_naming_the_pins_file():
    with pytest.raises(DatasetError, match="not pinned") as caught:
        pinned("devmap", "devmap/no-such-file.csv")
    assert caught.value.path == str(pins_file("devmap")) and "devmap/pins.json" in str(caught.value)
    with pytest.raises(DatasetError, match="no pins") as caught:
        pinned("no-such-data-set", "x.csv")
    assert caught.value.path.endswith("no-such-data-set/pins.json")
    with pytest.raises(DatasetError):
        pins("../datasets")


def test_a_malformed_pins_file_is_a_dataset_error_naming_it(tmp_path, monkeypatch):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "pins.json").write_text('{"files": {"broken/a": {"url": "https://x"}}}')
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "pins.json").write_text("{not json")
    monkeypatch.setattr(download, "_datasets_folder", lambda: tmp_path)
    download._read_pins.cache_clear()
    try:
        for name in ("broken", "garbled"):
            with pytest.raises(DatasetError) as caught:
                pins(name)
            assert caught.value.path == str(tmp_path / name / "pins.json")
    finally:
        download._read_pins.cache_clear()


def test_the_code_reads_the_same_pins():
    """The loaders' pins are these (the task modules may still spell them out; they must agree)."""
    from ncc.embeddings import vocabulary
    from ncc.tasks import classifyapp, devmap, threadcoarsening

    for item in [*devmap.DATA_FILES.values(), *threadcoarsening.DATA_FILES.values()]:
        assert pinned(item.path.split("/")[0], item.path) == item
    assert (vocabulary.PUBLISHED_URL, vocabulary.PUBLISHED_SHA256) == (
        pinned("inst2vec", "inst2vec/dictionary.tar.bz2").url, pinned("inst2vec", "inst2vec/dictionary.tar.bz2").sha256)
    assert pins("poj104")["origin"] == classifyapp.ORIGIN
    assert pins("poj104")["content_sha256"] == classifyapp.CONTENT_SHA256


@pytest.mark.parametrize("name,path,sha256", _all_pinned(), ids=[p for _, p, _ in _all_pinned()])
def test_a_pinned_file_in_the_data_home_has_its_pinned_digest(name, path, sha256):
    local = DATA / path
    if not local.is_file():
        pytest.skip(f"{local} is absent")
    digest = hashlib.sha256()
    with open(local, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    assert digest.hexdigest() == sha256, f"{local} differs from datasets/{name}/pins.json"


def test_the_poj104_programs_in_the_data_home_have_the_pinned_content():
    from ncc.tasks.classifyapp import content_digest

    manifest = DATA / "poj104" / "manifest.csv.gz"
    if not manifest.is_file():
        pytest.skip(f"{manifest} is absent")
    with gzip.open(manifest, "rt", newline="") as handle:
        rows = [(row["path"], row["sha1"]) for row in csv.DictReader(handle)]
    assert len(rows) == 52000
    assert content_digest(rows) == pins("poj104")["content_sha256"]


def test_pyproject_ships_every_package_and_the_datasets_folder():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    from setuptools.discovery import PEP420PackageFinder

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    expected = set(PEP420PackageFinder.find(str(REPO), include=["ncc*"]))
    expected |= {"ncc.datasets", *(f"ncc.datasets.{name}" for name in NAMES)}
    listed = set(config["packages"])
    assert not expected - listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(expected - listed)}"
    assert not listed - expected, f"no such folder: {sorted(listed - expected)}"
    assert config["package-dir"]["ncc.datasets"] == "datasets"
    assert {"*/pins.json", "*/README.md"} <= set(config["package-data"]["ncc.datasets"])
