"""A training corpus for inst2vec: modules in, statement counts and XFG context pairs out, streamed.

Each module is parsed, normalised and turned into its contextual flow graph (:mod:`ncc.embeddings.xfg`)
on its own, in a worker process; only its distinct statements and its pairs come back. The pairs go to
an on-disk :class:`PairStore` in shards of at most ``shard_pairs`` pairs, so neither the modules nor
the pairs of a corpus larger than memory are ever all held at once; what is held is the table of
distinct statements and their counts. (Ben-Nun et al., NeurIPS 2018, https://arxiv.org/abs/1806.07336.)
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from ncc.errors import NccError
from ncc.processes import process_pool
from ncc.frontend.ir import IRModule
from ncc.frontend.load import load
from ncc.embeddings.xfg import build_xfg, context_pairs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModuleContext:
    """One module's share of the corpus.

    Attributes:
        name: the module (or file) name.
        statements: the distinct normalised statements of the module.
        counts: ``int64 [U]``: occurrences of each of them.
        pairs: ``int32 [P, 2]``: unordered context pairs ``(a, b)``, indices into ``statements``, one per
            pair of XFG nodes within the context distance (``a`` may equal ``b`` when two different
            nodes hold the same statement).
        num_statements: statement nodes in the module's XFG.
    """

    name: str
    statements: tuple[str, ...]
    counts: np.ndarray
    pairs: np.ndarray
    num_statements: int


def module_context(ir: IRModule | str, context_size: int = 2, memory: bool = True,
                   name: str | None = None) -> ModuleContext:
    """Normalise a module, build its XFG and take its context pairs.

    Args:
        ir: an IRModule or IR text.
        context_size: the context distance N (see :func:`ncc.embeddings.xfg.context_pairs`).
        memory: link stores to the readers of their pointer (see :func:`ncc.embeddings.xfg.build_xfg`).
        name: the module name (default: the IRModule's).

    Raises:
        NccError: the IR does not parse or build.
    """
    from ncc.embeddings.normalise import module_statements

    graph, statements = module_statements(ir)
    xfg = build_xfg(graph, statements, memory=memory)
    pairs = context_pairs(xfg, context_size, ordered=False)
    unique, inverse, counts = np.unique(np.asarray(xfg.statements, dtype=object), return_inverse=True,
                                        return_counts=True) if xfg.statements else (np.empty(0, object),
                                                                                     np.empty(0, np.int64),
                                                                                     np.empty(0, np.int64))
    local = inverse.astype(np.int32).reshape(-1)[pairs] if pairs.size else np.empty((0, 2), np.int32)
    module_name = name or (ir.name if isinstance(ir, IRModule) else "module")
    return ModuleContext(name=module_name, statements=tuple(unique.tolist()), counts=counts.astype(np.int64),
                         pairs=local.reshape(-1, 2), num_statements=xfg.num_statements)


def _context_job(job: tuple[str, str, int, bool]) -> tuple[str, ModuleContext | None, str]:
    """Worker: (label, IR file, context size, memory) -> (label, context or None, error)."""
    label, path, context_size, memory = job
    try:
        module = load(path, name=Path(label).name.split(".")[0])
        return label, module_context(module, context_size, memory), ""
    except NccError as error:
        reason = str(error)
        return label, None, reason if label in reason else f"{label}: {reason}"
    except Exception as error:  # a bug must not stop the corpus; it is reported with the file
        return label, None, f"{label}: internal error: {error.__class__.__name__}: {error}"


def iter_module_contexts(files: Iterable[tuple[str, str | os.PathLike]], context_size: int = 2,
                         memory: bool = True, workers: int = 1, progress: bool = True,
                         total: int | None = None) -> Iterator[tuple[str, ModuleContext | None, str]]:
    """Stream the contexts of many IR files, one module at a time, in input order.

    Args:
        files: ``(label, IR file)`` pairs; the label names the input in errors (e.g. the source file).
        context_size, memory: as for :func:`module_context`.
        workers: processes to use (1: this process).
        progress: show a progress bar.
        total: the number of files, for the progress bar when ``files`` is a generator.

    Yields:
        ``(label, ModuleContext, "")`` for a module that built, ``(label, None, reason)`` for one that
        did not; one bad file never stops the stream.
    """
    jobs = ((label, str(path), context_size, memory) for label, path in files)
    if isinstance(files, (list, tuple)):
        total = len(files)
    with tqdm(total=total, desc="xfg", unit="module", disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                yield _context_job(job)
                bar.update(1)
            return
        with process_pool(workers) as pool:
            for outcome in pool.map(_context_job, jobs, chunksize=16):
                yield outcome
                bar.update(1)


@dataclass
class PairStore:
    """Context pairs of a corpus on disk, over a growing table of distinct statements.

    Pairs are kept as ``int32 [P, 2]`` shards of statement-table ids (``pairs-00000.npy`` ...) in
    ``directory``; :meth:`chunks` streams them back mapped through any id table, so the same store
    serves any vocabulary. Use it as a context manager to delete a temporary directory afterwards.

    Attributes:
        directory: where the shards are.
        statements: the distinct statements seen, position = table id.
        counts: occurrences of each statement (as XFG nodes).
        num_pairs: pairs stored.
        num_modules, num_statement_nodes: modules added and their statement nodes.
    """

    directory: Path
    shard_pairs: int = 1 << 22
    statements: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    num_pairs: int = 0
    num_modules: int = 0
    num_statement_nodes: int = 0
    temporary: bool = False
    _index: dict = field(default_factory=dict, repr=False)
    _buffer: list = field(default_factory=list, repr=False)
    _buffered: int = 0
    _shards: list = field(default_factory=list, repr=False)

    @classmethod
    def temporary_store(cls, parent: str | os.PathLike | None = None, shard_pairs: int = 1 << 22) -> "PairStore":
        """A store in a new temporary folder (under ``parent`` if given), deleted by :meth:`close`."""
        directory = Path(tempfile.mkdtemp(prefix="ncc-pairs-", dir=parent))
        return cls(directory=directory, shard_pairs=shard_pairs, temporary=True)

    def add(self, context: ModuleContext) -> None:
        """Add one module's statements and pairs."""
        index = self._index
        ids = np.empty(len(context.statements), np.int32)
        for k, (statement, count) in enumerate(zip(context.statements, context.counts.tolist())):
            table_id = index.get(statement)
            if table_id is None:
                table_id = index[statement] = len(self.statements)
                self.statements.append(statement)
                self.counts.append(0)
            self.counts[table_id] += count
            ids[k] = table_id
        self.num_modules += 1
        self.num_statement_nodes += context.num_statements
        if context.pairs.shape[0]:
            self._buffer.append(ids[context.pairs])
            self._buffered += context.pairs.shape[0]
            self.num_pairs += context.pairs.shape[0]
            if self._buffered >= self.shard_pairs:
                self.flush()

    def flush(self) -> None:
        """Write the buffered pairs as a shard."""
        if not self._buffer:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"pairs-{len(self._shards):05d}.npy"
        np.save(path, np.concatenate(self._buffer).astype(np.int32))
        self._shards.append(path)
        self._buffer, self._buffered = [], 0

    def statement_counts(self) -> Counter:
        """``{statement: occurrences}`` over the corpus."""
        return Counter(dict(zip(self.statements, self.counts)))

    def chunks(self, table: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Stream the pairs, one shard at a time.

        Args:
            table: ``[T]`` ids to map statement-table ids through (e.g. to vocabulary ids); None keeps
                the table ids.

        Yields:
            ``int32 [p, 2]`` arrays.
        """
        self.flush()
        for path in self._shards:
            pairs = np.load(path)
            yield pairs if table is None else np.asarray(table, np.int32)[pairs]

    def close(self) -> None:
        """Delete the shards (and the folder, if the store made it)."""
        for path in self._shards:
            Path(path).unlink(missing_ok=True)
        self._shards, self._buffer, self._buffered = [], [], 0
        if self.temporary:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "PairStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PairSource:
    """A restartable stream of vocabulary-id pair chunks: what :class:`ncc.embeddings.SkipGram` trains on.

    Args:
        chunks: a callable returning a fresh iterator of ``int [p, 2]`` arrays, or a list of arrays.
        num_pairs: how many pairs one pass yields.
    """

    def __init__(self, chunks, num_pairs: int):
        self._chunks = chunks
        self.num_pairs = int(num_pairs)

    @classmethod
    def from_array(cls, pairs: np.ndarray, chunk: int = 1 << 20) -> "PairSource":
        """Pairs already in memory, ``[P, 2]``."""
        pairs = np.asarray(pairs, np.int32).reshape(-1, 2)
        parts = [pairs[i:i + chunk] for i in range(0, pairs.shape[0], chunk)]
        return cls(parts, pairs.shape[0])

    @classmethod
    def from_store(cls, store: PairStore, table: np.ndarray) -> "PairSource":
        """The pairs of a store mapped through ``table`` (statement-table id -> vocabulary id)."""
        return cls(lambda: store.chunks(table), store.num_pairs)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self._chunks()) if callable(self._chunks) else iter(self._chunks)

    def cooccurrence(self, size: int) -> "scipy.sparse.csr_matrix":
        """The pairs counted in one pass: ``N[a, b]`` = how often ``a`` has ``b`` in its context.

        Both directions of each unordered pair are counted (``N`` is symmetric; a pair of two nodes with
        the same statement adds 2 to the diagonal), which is what skip-gram trains on.

        Args:
            size: the number of ids (``V``); every id in the pairs must be below it.

        Returns:
            ``float64 [V, V]`` CSR matrix, ``N.sum() == 2 * num_pairs``.

        Shapes:
            V ids.
        """
        import scipy.sparse as sp

        total = sp.csr_matrix((size, size), dtype=np.float64)
        for chunk in self:
            if chunk.shape[0] == 0:
                continue
            a = chunk[:, 0].astype(np.int64)
            b = chunk[:, 1].astype(np.int64)
            part = sp.coo_matrix((np.ones(a.shape[0], np.float64), (a, b)), shape=(size, size)).tocsr()
            total = total + part + part.T.tocsr()
        total.sum_duplicates()
        return total
