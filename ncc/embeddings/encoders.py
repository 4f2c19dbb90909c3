"""inst2vec statement ids as feature encoders for graph datasets, and embeddings trained on a set of modules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ncc.fileio import atomic_write
from ncc.frontend.ir import IRModule
from ncc.graph.program_graph import ProgramGraph

__all__ = ["StatementIds", "embeddings_digest", "module_embeddings"]


class StatementIds:
    """inst2vec statement ids per node, as a feature encoder for :class:`~ncc.training.datasets.ProgramGraphDataset`.

    The ids of a graph need its module's struct types, so they are computed up front from
    ``(graph, module)`` pairs and looked up by graph identity.

    Args:
        embeddings: trained :class:`~ncc.embeddings.skipgram.Embeddings`.
        pairs: ``(graph, module)`` of every graph that will be transformed.
    """

    def __init__(self, embeddings: Any, pairs: Iterable[tuple[ProgramGraph, IRModule]]):
        from ncc.embeddings.normalise import module_statements

        self.embeddings = embeddings
        self._ids: dict[int, np.ndarray] = {}
        self._graphs: list[ProgramGraph] = []  # keeps the ids' keys alive
        for graph, module in pairs:
            if id(graph) not in self._ids:
                _, statements = module_statements(module, graph)
                self._ids[id(graph)] = embeddings.ids_for_graph(graph, statements)
                self._graphs.append(graph)

    def __len__(self) -> int:
        return len(self.embeddings.feature_matrix())

    def transform(self, graph: ProgramGraph) -> np.ndarray:
        try:
            return self._ids[id(graph)]
        except KeyError:
            raise KeyError(f"StatementIds has no statements for graph {graph.module_name!r}") from None

    def digest(self) -> str:
        return embeddings_digest(self.embeddings)


def embeddings_digest(embeddings: Any) -> str:
    """sha256 of trained embeddings' matrix and vocabulary: the content of an inst2vec feature encoder."""
    hasher = hashlib.sha256(embeddings.matrix.tobytes())
    hasher.update(json.dumps(embeddings.vocabulary.tokens_).encode())
    return hasher.hexdigest()


def module_embeddings(modules: Sequence[IRModule], folder: Path, progress: bool = True) -> Any:
    """inst2vec embeddings trained without labels on the distinct modules, cached in ``folder``."""
    from ncc.embeddings.skipgram import Embeddings
    from ncc.embeddings.train import embed

    folder = Path(folder)
    if (folder / "embeddings.npy").is_file():
        return Embeddings.load(folder)
    scratch = folder / "ir"
    files = []
    for module in {id(m): m for m in modules}.values():
        path = scratch / f"{hashlib.sha256(module.text.encode()).hexdigest()[:16]}.ll"
        if not path.is_file():
            atomic_write(path, module.text)
        files.append((module.name, str(path)))
    return embed([], folder, ir_files=files, progress=progress).embeddings
