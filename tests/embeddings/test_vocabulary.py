"""Vocabulary: fitting, ids, subsampling, plain-file round trip, NCC's published vocabulary."""

import gzip
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from ncc.embeddings.vocabulary import PUBLISHED_SHA256, Vocabulary, tokens_from_dictionary_archive

SHARED = Path(os.environ.get("NCC_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")) / "inst2vec"

MODULES = [["store", "load", "load", None, "add"], ["store", "br", "load"], ["ret", "store"]]


def test_fit_orders_by_count_and_cuts_rare_statements():
    vocabulary = Vocabulary(min_count=2).fit(MODULES)
    assert vocabulary.tokens_ == ["load", "store", "!UNK"]
    assert vocabulary.counts_.tolist() == [3, 3, 3]  # add, br and ret went to !UNK
    assert vocabulary.index_ == {"load": 0, "store": 1, "!UNK": 2}
    assert vocabulary.transform(["store", "add", "load"]).tolist() == [1, 2, 0]
    assert vocabulary.unknown_id == 2 and "add" not in vocabulary and len(vocabulary) == 3
    assert vocabulary.coverage({"load": 3, "store": 3, "add": 2}) == pytest.approx(6 / 8)


def test_fit_only_stores_settings_in_init():
    vocabulary = Vocabulary(min_count=3, subsample=0.0)
    assert not hasattr(vocabulary, "tokens_")
    with pytest.raises(RuntimeError):
        vocabulary.transform(["x"])


def test_keep_probabilities_follow_word2vec():
    vocabulary = Vocabulary(subsample=0.1).fit_counts({"a": 90, "b": 9, "c": 1})
    keep = vocabulary.keep_probabilities()
    threshold = 0.1 * 100
    assert keep[0] == pytest.approx((math.sqrt(90 / threshold) + 1) * threshold / 90)
    assert keep[1] == 1.0 and keep[2] == 1.0 and keep[3] == 1.0  # rare ones and the empty !UNK are kept
    assert np.all(Vocabulary(subsample=0).fit_counts({"a": 90}).keep_probabilities() == 1)


def test_save_load_round_trip(tmp_path):
    vocabulary = Vocabulary(min_count=1, subsample=1e-4).fit(MODULES + [["<%ID> = add i32 <%ID>, \"\\t\"\n"]])
    path = vocabulary.save(tmp_path)
    assert path.name == "vocabulary.json" and json.loads(path.read_text())["tokens"] == vocabulary.tokens_
    loaded = Vocabulary.load(tmp_path)
    assert loaded.tokens_ == vocabulary.tokens_ and loaded.index_ == vocabulary.index_
    assert np.array_equal(loaded.counts_, vocabulary.counts_)
    assert (loaded.min_count, loaded.subsample, loaded.unknown) == (1, 1e-4, "!UNK")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("content, message", [(None, "no vocabulary at"), (b"\xff\xfe", "not a vocabulary file"),
                                              ("[1, 2]", "not a vocabulary file"),
                                              ('{"format": 99}', "unknown vocabulary format 99")])
def test_a_bad_vocabulary_file_is_a_one_line_error(tmp_path, content, message):
    from ncc.errors import DatasetError

    path = tmp_path / "vocabulary.json"
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DatasetError, match=message) as caught:
        Vocabulary.load(tmp_path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_with_counts_keeps_ids():
    published_like = Vocabulary().fit_counts({"a": 5, "b": 1})
    counted = published_like.with_counts({"b": 4, "zzz": 2})
    assert counted.tokens_ == published_like.tokens_
    assert counted.counts_.tolist() == [0, 4, 2]


needs_published = pytest.mark.skipif(not (SHARED / "vocabulary.json.gz").is_file(), reason="no published data")


@needs_published
def test_published_vocabulary():
    vocabulary = Vocabulary.published(SHARED)
    assert len(vocabulary) == 8565 and vocabulary.unknown_id == 8564
    assert vocabulary.index_["<%ID> = add i32 <%ID>, <INT>"] == 513  # as in the analogy questions
    assert "store i32 <%ID>, i32* <%ID>, align 4" in vocabulary or any("store i32" in t for t in vocabulary.tokens_)


@needs_published
def test_published_vocabulary_is_rebuilt_from_the_pinned_download(tmp_path, monkeypatch):
    import ncc.embeddings.vocabulary as module

    archive = SHARED / "dictionary.tar.bz2"
    assert __import__("hashlib").sha256(archive.read_bytes()).hexdigest() == PUBLISHED_SHA256
    monkeypatch.setattr(module, "PUBLISHED_URL", archive.resolve().as_uri())
    vocabulary = Vocabulary.published(tmp_path / "inst2vec")
    expected = json.loads(gzip.decompress((SHARED / "vocabulary.json.gz").read_bytes()))
    assert vocabulary.tokens_ == expected == tokens_from_dictionary_archive(archive.read_bytes())
    assert (tmp_path / "inst2vec" / "dictionary.tar.bz2").is_file()


def test_download_with_a_wrong_checksum_is_refused(tmp_path, monkeypatch):
    import ncc.embeddings.vocabulary as module
    from ncc.errors import DatasetError

    fake = tmp_path / "fake.tar.bz2"
    fake.write_bytes(b"not the dictionary")
    monkeypatch.setattr(module, "PUBLISHED_URL", fake.as_uri())
    with pytest.raises(DatasetError, match="sha256"):
        Vocabulary.published(tmp_path / "inst2vec")
    assert not (tmp_path / "inst2vec" / "vocabulary.json.gz").exists()
