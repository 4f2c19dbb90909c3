"""The statement vocabulary of inst2vec: statement <-> id, counts, ``!UNK`` and frequent-statement subsampling.

inst2vec (Ben-Nun et al., NeurIPS 2018, https://arxiv.org/abs/1806.07336) embeds each distinct
normalised LLVM IR statement; statements seen fewer than a cut-off number of times share the ``!UNK``
token. NCC's published vocabulary has 8,565 statements with ``!UNK`` last (id 8564);
:meth:`Vocabulary.published` loads it.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import pickle
import tarfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ncc.download import DataFile, fetch, pinned
from ncc.errors import DatasetError
from ncc.fileio import atomic_write, read_json_record
from ncc.paths import data_home

logger = logging.getLogger(__name__)

UNKNOWN = "!UNK"
VOCABULARY_FILE = "vocabulary.json"
_FORMAT = 1

#: NCC's published dictionary, as CompilerGym vendors it (a pickled dict statement -> id, BSD-3-Clause);
#: URL and sha256 are pinned in ``datasets/inst2vec/pins.json``.
_PUBLISHED = pinned("inst2vec", "inst2vec/dictionary.tar.bz2")
PUBLISHED_URL = _PUBLISHED.url
PUBLISHED_SHA256 = _PUBLISHED.sha256
PUBLISHED_SIZE = 8565


class Vocabulary:
    """Statement vocabulary, fitted on a corpus in scikit-learn style.

    Tokens are sorted by count (most frequent first, ties in string order), and the unknown token comes
    last; every statement outside the vocabulary maps to it.

    Args:
        min_count: statements seen fewer times than this become the unknown token.
        subsample: word2vec's sampling threshold ``t`` for frequent statements (0 turns it off); see
            :meth:`keep_probabilities`.
        unknown: the unknown token.

    Attributes:
        tokens_: the statements, position = id; the unknown token is among them.
        counts_: ``int64 [V]``: occurrences of each token in the corpus it was fitted on (for the unknown
            token: the occurrences of every statement cut off); zeros where unknown.
        index_: statement -> id.
    """

    def __init__(self, min_count: int = 1, subsample: float = 1e-3, unknown: str = UNKNOWN):
        self.min_count = min_count
        self.subsample = subsample
        self.unknown = unknown

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, statement_streams: Iterable[Iterable[str | None]]) -> "Vocabulary":
        """Count the statements of a corpus and keep those seen at least ``min_count`` times.

        Args:
            statement_streams: one iterable of statements per module (None entries are skipped), or
                any iterable of iterables; consumed once, so generators over modules on disk work.

        Returns:
            self, fitted.
        """
        counts: Counter = Counter()
        for stream in statement_streams:
            counts.update(s for s in stream if s is not None)
        return self._fit_counts(counts)

    def fit_counts(self, counts: Mapping[str, int]) -> "Vocabulary":
        """Fit from statement counts already in hand (``{statement: occurrences}``)."""
        return self._fit_counts(Counter(counts))

    def _fit_counts(self, counts: Counter) -> "Vocabulary":
        if self.min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {self.min_count}")
        counts = Counter({s: c for s, c in counts.items() if s != self.unknown})
        kept = sorted((s for s, c in counts.items() if c >= self.min_count), key=lambda s: (-counts[s], s))
        cut = sum(c for s, c in counts.items() if c < self.min_count)
        self._set(kept + [self.unknown], [counts[s] for s in kept] + [cut])
        logger.info("vocabulary: %d statements kept of %d distinct (min count %d)", len(kept), len(counts),
                    self.min_count)
        return self

    def _set(self, tokens: list[str], counts) -> None:
        if len(set(tokens)) != len(tokens):
            raise DatasetError("vocabulary has duplicate statements")
        if self.unknown not in tokens:
            raise DatasetError(f"vocabulary lacks the unknown token {self.unknown!r}")
        self.tokens_ = list(tokens)
        self.counts_ = np.asarray(counts, dtype=np.int64)
        self.index_ = {token: i for i, token in enumerate(self.tokens_)}

    def with_counts(self, counts: Mapping[str, int]) -> "Vocabulary":
        """A new vocabulary with the same tokens and ids, and counts taken from a corpus.

        Statements outside the vocabulary count towards the unknown token. Used to get sampling
        frequencies for a fixed vocabulary such as the published one.
        """
        self._check_fitted()
        new = Vocabulary(self.min_count, self.subsample, self.unknown)
        values = np.zeros(len(self.tokens_), np.int64)
        unknown = self.index_[self.unknown]
        for statement, count in counts.items():
            values[self.index_.get(statement, unknown)] += count
        new._set(self.tokens_, values)
        return new

    # -- use --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        self._check_fitted()
        return len(self.tokens_)

    def __contains__(self, statement: str) -> bool:
        self._check_fitted()
        return statement in self.index_

    @property
    def unknown_id(self) -> int:
        """The id of the unknown token."""
        self._check_fitted()
        return self.index_[self.unknown]

    def transform(self, statements: Iterable[str]) -> np.ndarray:
        """Ids of statements, ``int64 [n]``; statements outside the vocabulary get :attr:`unknown_id`."""
        self._check_fitted()
        unknown = self.index_[self.unknown]
        get = self.index_.get
        return np.fromiter((get(s, unknown) for s in statements), dtype=np.int64)

    def keep_probabilities(self) -> np.ndarray:
        """word2vec's probability of keeping one occurrence of each token, ``float64 [V]``.

        With ``f = count / total`` and threshold ``t = subsample``, a token is kept with probability
        ``min(1, (sqrt(f / t) + 1) * t / f)`` (Mikolov et al. 2013 as implemented in word2vec.c and
        gensim), so statements more frequent than ``t`` are dropped more often. 1 everywhere when
        ``subsample`` is 0 or nothing was counted.
        """
        self._check_fitted()
        counts = self.counts_.astype(np.float64)
        total = counts.sum()
        if self.subsample <= 0 or total == 0:
            return np.ones(len(counts))
        threshold = self.subsample * total
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
        keep[counts == 0] = 1.0
        return np.minimum(keep, 1.0)

    def coverage(self, counts: Mapping[str, int]) -> float:
        """The share of statement occurrences in ``counts`` that the vocabulary holds (not ``!UNK``)."""
        self._check_fitted()
        total = sum(counts.values())
        known = sum(c for s, c in counts.items() if s in self.index_ and s != self.unknown)
        return known / total if total else 0.0

    # -- files ------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``vocabulary.json`` (settings, tokens, counts) into ``directory``, atomically."""
        self._check_fitted()
        record = {"format": _FORMAT, "min_count": self.min_count, "subsample": self.subsample,
                  "unknown": self.unknown, "tokens": self.tokens_, "counts": self.counts_.tolist()}
        return atomic_write(Path(directory) / VOCABULARY_FILE, json.dumps(record, ensure_ascii=False))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save` (``directory`` or the ``vocabulary.json`` itself)."""
        path, record = read_json_record(directory, VOCABULARY_FILE, "vocabulary")
        if record.get("format") != _FORMAT:
            raise DatasetError(f"{path}: unknown vocabulary format {record.get('format')!r}")
        vocabulary = cls(record["min_count"], record["subsample"], record["unknown"])
        vocabulary._set(record["tokens"], record["counts"])
        return vocabulary

    @classmethod
    def published(cls, data_dir: str | os.PathLike | None = None, subsample: float = 1e-3) -> "Vocabulary":
        """NCC's published 8,565-statement vocabulary (``!UNK`` = 8564), with zero counts.

        Read from ``<data home>/inst2vec/vocabulary.json.gz``; when that file is absent, NCC's dictionary
        is fetched from CompilerGym's copy (:data:`PUBLISHED_URL`; :func:`ncc.download.fetch`: under a
        lock, checked against :data:`PUBLISHED_SHA256`) and the vocabulary written from it atomically.

        Args:
            data_dir: the ``inst2vec`` data folder (default ``ncc.paths.data_home() / "inst2vec"``).
            subsample: the sampling threshold of the returned vocabulary.

        Raises:
            DatasetError: the download failed or does not match its checksum.
        """
        folder = Path(data_dir) if data_dir is not None else data_home() / "inst2vec"
        path = folder / "vocabulary.json.gz"
        if not path.is_file():
            _download_published(folder)
        tokens = json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
        if len(tokens) != PUBLISHED_SIZE or tokens[-1] != UNKNOWN:
            raise DatasetError(f"{path}: expected {PUBLISHED_SIZE} statements ending in {UNKNOWN}")
        vocabulary = cls(min_count=1, subsample=subsample, unknown=UNKNOWN)
        vocabulary._set(tokens, np.zeros(len(tokens), np.int64))
        return vocabulary

    def _check_fitted(self) -> None:
        if not hasattr(self, "tokens_"):
            raise RuntimeError("this Vocabulary is not fitted yet: call fit() or load one")

    def __repr__(self) -> str:
        size = len(self.tokens_) if hasattr(self, "tokens_") else "unfitted"
        return f"Vocabulary(min_count={self.min_count}, subsample={self.subsample}, size={size})"


class _NoGlobals(pickle.Unpickler):
    """Unpickles plain containers only: NCC's dictionary is a dict of str -> int."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the dictionary")


def tokens_from_dictionary_archive(data: bytes) -> list[str]:
    """The statements of NCC's ``dictionary.tar.bz2`` (a pickled ``{statement: id}``), in id order."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:bz2") as archive:
        member = archive.getmember("dictionary.pickle")
        dictionary = _NoGlobals(archive.extractfile(member)).load()
    if not isinstance(dictionary, dict) or sorted(dictionary.values()) != list(range(len(dictionary))):
        raise DatasetError("dictionary.pickle is not a dict of statement -> ids 0..n-1")
    tokens = [""] * len(dictionary)
    for statement, index in dictionary.items():
        tokens[index] = statement
    return tokens


def _download_published(folder: Path) -> None:
    """Write ``vocabulary.json.gz`` from NCC's ``dictionary.tar.bz2`` (fetched when absent)."""
    archive = fetch(DataFile("dictionary.tar.bz2", PUBLISHED_URL, PUBLISHED_SHA256), root=folder)
    tokens = tokens_from_dictionary_archive(archive.read_bytes())
    atomic_write(folder / "vocabulary.json.gz",
                 gzip.compress(json.dumps(tokens, ensure_ascii=False).encode("utf-8"), mtime=0))
