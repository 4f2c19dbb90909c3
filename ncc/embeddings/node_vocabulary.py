"""The node vocabulary of ProGraML: one feature id per distinct node ``text``, fitted on training graphs.

ProGraML (Cummins et al., ICML 2021, https://arxiv.org/abs/2003.10536) embeds each node by its text
(an instruction's opcode, a variable's or constant's type, ``[external]`` for the external node) through
a vocabulary built from the training graphs only (2,230 entries on its data set); texts outside the
vocabulary share one reserved unknown id. :class:`NodeVocabulary` does this in scikit-learn style and
needs neither torch nor anything outside numpy.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ncc.errors import DatasetError
from ncc.fileio import atomic_write, read_json_record

logger = logging.getLogger(__name__)

UNKNOWN = "!UNK"
NODE_VOCABULARY_FILE = "node_vocabulary.json"
_FORMAT = 1
_KIND = "ncc.node_vocabulary"


def _texts(graph: Any) -> Sequence[str]:
    """The node texts of a ProgramGraph, a PyG ``Data`` from ``to_pyg`` (``text``), or a sequence of str."""
    texts = getattr(graph, "node_text", None)
    if texts is None:
        texts = getattr(graph, "text", None)
    if texts is None:
        if isinstance(graph, (str, bytes)) or not isinstance(graph, Sequence | np.ndarray):
            raise TypeError(f"expected a ProgramGraph, a PyG Data with 'text', or a sequence of node texts, "
                            f"got {type(graph).__name__}")
        texts = graph
    return texts


class NodeVocabulary:
    """Node text -> feature id, fitted on training graphs in scikit-learn style.

    Texts are sorted by count (most frequent first, ties in string order) and the unknown token comes
    last, so ``len(vocabulary)`` is the number of ids an embedding table needs and
    :attr:`unknown_id` is ``len(vocabulary) - 1``.

    Args:
        min_count: texts seen fewer times than this in the training graphs map to the unknown id.
        unknown: the unknown token (must not be a node text).

    Attributes:
        tokens_: the texts, position = id; the unknown token last.
        counts_: ``int64 [V]``: occurrences of each token among the training graphs' nodes (for the
            unknown token: the occurrences of every text cut off by ``min_count``).
        index_: text -> id.
    """

    def __init__(self, min_count: int = 1, unknown: str = UNKNOWN):
        self.min_count = min_count
        self.unknown = unknown

    def get_params(self) -> dict:
        return {"min_count": self.min_count, "unknown": self.unknown}

    def fit(self, graphs: Iterable[Any]) -> "NodeVocabulary":
        """Count node texts over training graphs and keep those seen at least ``min_count`` times.

        Args:
            graphs: ProgramGraphs (or PyG ``Data`` with ``text``, or sequences of node texts); consumed
                once, so a generator over graphs on disk works. Fit on the training split only.

        Returns:
            self, fitted.

        Raises:
            ValueError: ``min_count`` is not a positive integer.
        """
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, (int, np.integer)) \
                or self.min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {self.min_count!r}")
        counts: Counter = Counter()
        graph_count = 0
        for graph in graphs:
            counts.update(_texts(graph))
            graph_count += 1
        counts.pop(self.unknown, None)
        kept = sorted((t for t, c in counts.items() if c >= self.min_count), key=lambda t: (-counts[t], t))
        cut = sum(c for c in counts.values() if c < self.min_count)
        self._set(kept + [self.unknown], [counts[t] for t in kept] + [cut])
        logger.info("node vocabulary: %d texts kept of %d distinct in %d graphs (min count %d)", len(kept),
                    len(counts), graph_count, self.min_count)
        return self

    def _set(self, tokens: list[str], counts: Sequence[int]) -> None:
        if len(set(tokens)) != len(tokens):
            raise DatasetError("node vocabulary has duplicate texts")
        if not tokens or tokens[-1] != self.unknown:
            raise DatasetError(f"node vocabulary must end with the unknown token {self.unknown!r}")
        if len(counts) != len(tokens):
            raise DatasetError(f"node vocabulary has {len(tokens)} tokens but {len(counts)} counts")
        self.tokens_ = list(tokens)
        self.counts_ = np.asarray(counts, dtype=np.int64)
        self.index_ = {token: i for i, token in enumerate(self.tokens_)}

    def _check_fitted(self) -> None:
        if not hasattr(self, "tokens_"):
            raise RuntimeError("this NodeVocabulary is not fitted yet: call fit(graphs) or load(path)")

    def __len__(self) -> int:
        self._check_fitted()
        return len(self.tokens_)

    def __contains__(self, text: str) -> bool:
        self._check_fitted()
        return text in self.index_ and text != self.unknown

    def __repr__(self) -> str:
        size = len(self.tokens_) if hasattr(self, "tokens_") else "unfitted"
        return f"NodeVocabulary(min_count={self.min_count!r}, size={size})"

    @property
    def unknown_id(self) -> int:
        """The id every text outside the vocabulary gets (``len(self) - 1``)."""
        self._check_fitted()
        return len(self.tokens_) - 1

    def transform(self, graph: Any) -> np.ndarray:
        """Feature ids of a graph's nodes, ``int64 [N]``; unknown texts get :attr:`unknown_id`.

        Args:
            graph: a ProgramGraph, a PyG ``Data`` with ``text``, or a sequence of node texts.
        """
        self._check_fitted()
        texts = _texts(graph)
        get, unknown = self.index_.get, self.unknown_id
        return np.fromiter((get(t, unknown) for t in texts), dtype=np.int64, count=len(texts))

    def fit_transform(self, graphs: Sequence[Any]) -> list[np.ndarray]:
        """:meth:`fit` on ``graphs`` (a sequence, read twice), then the ids of each."""
        self.fit(graphs)
        return [self.transform(g) for g in graphs]

    def coverage(self, graphs: Iterable[Any]) -> float:
        """The share of nodes of ``graphs`` whose text the vocabulary holds (0 for no nodes)."""
        self._check_fitted()
        known = total = 0
        for graph in graphs:
            ids = self.transform(graph)
            total += ids.size
            known += int(np.count_nonzero(ids != self.unknown_id))
        return known / total if total else 0.0

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as JSON, atomically; a directory gets ``node_vocabulary.json`` inside."""
        self._check_fitted()
        path = Path(path)
        if path.is_dir():
            path = path / NODE_VOCABULARY_FILE
        record = {"kind": _KIND, "format": _FORMAT, "min_count": self.min_count, "unknown": self.unknown,
                  "tokens": self.tokens_, "counts": self.counts_.tolist()}
        return atomic_write(path, json.dumps(record, ensure_ascii=False, indent=0))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NodeVocabulary":
        """Read a vocabulary written by :meth:`save` (the file, or a directory holding ``node_vocabulary.json``).

        Raises:
            DatasetError: no such file, or it is not a node vocabulary of a known format.
        """
        path, record = read_json_record(path, NODE_VOCABULARY_FILE, "node vocabulary")
        if record.get("kind") != _KIND:
            raise DatasetError(f"{path}: not a node vocabulary file")
        if record.get("format") != _FORMAT:
            raise DatasetError(f"{path}: unknown node vocabulary format {record.get('format')!r}")
        vocabulary = cls(record["min_count"], record["unknown"])
        vocabulary._set(record["tokens"], record["counts"])
        return vocabulary
