"""Training datasets of program graphs: a processed cache that re-runs for free, and batch samplers.

:class:`ProgramGraphDataset` is a PyTorch Geometric ``InMemoryDataset`` of :func:`ncc.graph.to_pyg` records
made from labelled :class:`~ncc.graph.ProgramGraph` s. Its processed file lives at
``<root>/processed/<name>-<key>.pt``, where the key is the sha256 of the graph schema version
(:data:`ncc.graph.SCHEMA_VERSION`), this module's storage format, the feature encoder's content (e.g. a
fitted ``NodeVocabulary``) and the source data's own key. A second run with the same three finds the file
and builds nothing; changing any of them processes again. The file is written through a temporary file
and renamed into place, so a processing run that is killed leaves either no cache entry or a whole one.

:class:`GraphBatchSampler` forms batches by count (``batch_size`` graphs) or by a node budget (as many
graphs as fit in ``node_budget`` nodes, ProGraML's 10,000 by default in its configs), and shards them
over the processes of a distributed run: each step takes ``num_replicas`` consecutive batches from one
seeded permutation and gives one to each rank, so the step's global batch does not depend on how many
processes share it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch_geometric.data import InMemoryDataset

from ncc.errors import DatasetError
from ncc.fileio import atomic_write
from ncc.graph import SCHEMA_VERSION, ProgramGraph

logger = logging.getLogger(__name__)

#: Bumped when the processed file's layout changes, so old files stop matching.
DATASET_FORMAT = 2

__all__ = ["Example", "GraphSource", "ExampleSource", "ProgramGraphDataset", "GraphBatchSampler", "graph_digest",
           "feature_digest", "DATASET_FORMAT"]


@dataclass(frozen=True)
class Example:
    """One labelled program graph.

    Attributes:
        graph: the program graph.
        y: the label: a class id or value per graph, or an array with one entry per node.
        aux: graph-level auxiliary inputs (e.g. devmap's transfer and work-group sizes), or None.
        name: where it came from, for messages.
        selector: the root marker of a root-node query, ``[N]`` of 0 / 1 (ProGraML's data-flow tasks), or None.
        mask: the nodes a node-level label is scored on, ``bool [N]`` (None: every node).
        info: graph-level numbers stored beside the example under their own names (e.g. ``steps``, what a
            data-flow analysis needed), for analysing results; the models do not read them.
    """

    graph: ProgramGraph
    y: Any
    aux: Sequence[float] | None = None
    name: str = ""
    selector: Any = None
    mask: Any = None
    info: Mapping[str, float] | None = None


class GraphSource(Protocol):
    """Where the examples of one split come from.

    Attributes:
        key: a digest of everything that decides the examples (sources, labels, compiler settings), cheap
            to compute without building any graph, so that a cached dataset is found without work.
    """

    key: str

    def examples(self) -> Iterable[Example]:
        """The examples, built on demand (only when the processed cache misses)."""


def _digest(*parts: Any) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode()
        hasher.update(len(data).to_bytes(8, "little"))
        hasher.update(data)
    return hasher.hexdigest()


def graph_digest(graph: ProgramGraph) -> str:
    """sha256 of a graph's arrays, function names and module name (not its metadata)."""
    parts: list[Any] = [graph.module_name, list(graph.function_names)]
    for name in graph.ARRAYS:
        array = getattr(graph, name)
        if array.dtype == object:
            parts.append("\x00".join(map(str, array)).encode("utf-8", "surrogatepass"))
        else:
            parts.append(str(array.dtype).encode() + bytes(np.ascontiguousarray(array).data))
    return _digest(*parts)


def feature_digest(encoder: Any) -> str:
    """sha256 of a feature encoder's content: what decides the ids it gives each node.

    Works for anything with a ``digest()`` method, a fitted ``NodeVocabulary`` (its tokens and unknown
    token) and other encoders that keep their table in ``tokens_``.

    Raises:
        DatasetError: the encoder is not fitted or its content cannot be told.
    """
    if hasattr(encoder, "digest") and callable(encoder.digest):
        return str(encoder.digest())
    tokens = getattr(encoder, "tokens_", None)
    if tokens is None:
        raise DatasetError(f"cannot tell the content of the feature encoder {encoder!r}: is it fitted?")
    return _digest(type(encoder).__qualname__, getattr(encoder, "unknown", None), list(tokens))


class ExampleSource:
    """Examples already in memory; the key is a digest of their graphs, labels and auxiliary inputs.

    Args:
        examples: the examples (or ``(graph, y)`` / ``(graph, y, aux)`` tuples).
    """

    def __init__(self, examples: Iterable[Example | tuple]):
        self._examples = [e if isinstance(e, Example) else Example(*e) for e in examples]
        self.key = _digest(*[(graph_digest(e.graph), np.asarray(e.y).tolist(),
                              None if e.aux is None else np.asarray(e.aux, dtype=np.float64).tolist(),
                              None if e.selector is None else np.asarray(e.selector, dtype=np.int64).tolist(),
                              None if e.mask is None else np.asarray(e.mask, dtype=bool).tolist(),
                              sorted((e.info or {}).items()))
                             for e in self._examples])

    def __len__(self) -> int:
        return len(self._examples)

    def examples(self) -> list[Example]:
        return list(self._examples)


class ProgramGraphDataset(InMemoryDataset):
    """Labelled program graphs as model inputs, processed once and cached on disk.

    Each item is the compact ``Data`` of :func:`ncc.graph.to_pyg`: ``x`` (feature ids), ``edge_index``,
    ``edge_flow``, ``edge_position``, ``node_type``, ``y`` and, where the examples have them, ``aux``,
    ``selector`` and ``mask``.

    Args:
        root: the dataset folder; the processed file goes to ``root/processed``.
        source: where the examples come from (its ``key`` names them).
        encoder: the feature encoder, with ``transform(graph) -> int [N]`` (e.g. a fitted NodeVocabulary).
        name: the file name's stem (e.g. the split).
        transform: a PyG transform applied on access.
        progress: show a progress bar while processing.

    Attributes:
        key: the cache key (hex sha256).
        path: the processed file.
        reprocessed: True when this instance built the processed file, False when it was found.
        num_nodes_per_graph: ``int64 [len]``: the node count of each item (for node-budget batching).
    """

    def __init__(self, root: str | Path, source: GraphSource, encoder: Any, name: str = "data",
                 transform: Callable | None = None, progress: bool = False):
        self.source = source
        self.encoder = encoder
        self.name = name
        self.key = _digest("ncc.ProgramGraphDataset", DATASET_FORMAT, SCHEMA_VERSION, feature_digest(encoder),
                           source.key)
        self._progress = progress
        super().__init__(str(root), transform=transform, log=False)
        self.path = Path(self.processed_dir) / self.processed_file_names[0]
        self.reprocessed = False
        if not self.path.exists():
            self._build()
            self.reprocessed = True
        else:
            logger.info("%s: processed dataset found (%s)", self.name, self.path)
        try:
            self.load(str(self.path))
        except Exception as error:  # a foreign or damaged file under our name
            raise DatasetError(f"cannot read processed dataset: {error}", str(self.path)) from None
        sizes = self.slices["x"] if self.slices is not None and "x" in self.slices else None
        if sizes is None:  # one graph: InMemoryDataset keeps no slices
            self.num_nodes_per_graph = np.asarray([int(self._data.num_nodes)], dtype=np.int64)
        else:
            self.num_nodes_per_graph = np.diff(sizes.numpy()).astype(np.int64)

    @property
    def raw_file_names(self) -> list[str]:
        return []

    @property
    def processed_file_names(self) -> list[str]:
        return [f"{self.name}-{self.key[:24]}.pt"]

    def _build(self) -> None:
        from tqdm import tqdm

        from ncc.graph import to_pyg

        logger.info("%s: processing into %s", self.name, self.processed_dir)
        records = []
        examples = self.source.examples()
        for example in tqdm(examples, desc=f"processing {self.name}", unit="graph", disable=not self._progress,
                            leave=False):
            record = to_pyg(example.graph, self.encoder, y=example.y, aux=example.aux, selector=example.selector,
                            mask=example.mask, compact=True)
            for key, value in (example.info or {}).items():
                record[key] = torch.tensor([value])
            records.append(record)
        if not records:
            raise DatasetError(f"no examples in split {self.name!r}", str(self.root))
        data, slices = self.collate(records)
        payload = (data.to_dict(), slices, data.__class__)
        atomic_write(self.path, lambda stream: torch.save(payload, stream), "wb")
        manifest = {"format": DATASET_FORMAT, "schema_version": SCHEMA_VERSION, "key": self.key,
                    "features": feature_digest(self.encoder), "source": self.source.key, "graphs": len(records),
                    "nodes": int(data.num_nodes)}
        atomic_write(self.path.with_suffix(".json"), json.dumps(manifest, indent=1))
        logger.info("%s: %d graphs processed", self.name, len(records))

    @property
    def labels(self) -> torch.Tensor:
        """The ``y`` of every item, as stored (one per graph, or concatenated per node)."""
        return self._data.y


class GraphBatchSampler(torch.utils.data.Sampler):
    """Batches of graph indices by count or by node budget, sharded over the ranks of a distributed run.

    Each epoch, a permutation seeded by ``(seed, epoch)`` (or the identity, without shuffling) is cut
    into *bins*: ``batch_size`` graphs each, or, with a node budget, as many consecutive graphs as fit
    in ``node_budget`` nodes (a graph larger than the budget gets a bin of its own). With
    ``even=True`` (training) every ``num_replicas`` consecutive bins form one step and rank ``r`` gets
    the ``r``-th; the graphs of a last, incomplete group are dealt out again over all ranks (largest
    first to the least loaded), so every rank takes the same number of steps and every graph is used
    (by node budget, fewer graphs left than ranks are skipped in that epoch). By count, a last step
    that would give some rank fewer than two graphs (batch norm needs two) joins the step before. With
    ``even=False`` (evaluation) rank ``r`` gets bins ``r, r + num_replicas, ...``, every graph exactly
    once over all ranks. With ``bucket=True`` (and shuffling) the permutation is cut into chunks of
    ``BUCKET_BATCHES`` steps' worth of graphs, each chunk sorted by size before it is cut into bins, and
    the steps are shuffled (the last stays last): batches of graphs of similar size, so a sequence
    model pads little. Without shuffling, ``bucket=True`` orders all graphs by size.

    Hence the union over ranks of one step's batches is the same global batch for one process with
    ``batch_size * num_replicas`` as for ``num_replicas`` processes with ``batch_size`` each (but for
    the last two steps when only the many-process run folds its last step).

    Args:
        sizes: node count of every graph.
        batch_size: graphs per bin (used when ``node_budget`` is 0).
        node_budget: nodes per bin (0: batch by count).
        shuffle: permute every epoch.
        seed: the permutation seed.
        num_replicas: processes sharing each step.
        rank: this process's rank.
        even: give every rank the same number of batches (training); False for evaluation.
        bucket: group graphs of similar size into the same bins.
    """

    BUCKET_BATCHES = 32

    def __init__(self, sizes: Sequence[int], batch_size: int = 32, node_budget: int = 0, shuffle: bool = True,
                 seed: int = 0, num_replicas: int = 1, rank: int = 0, even: bool = True, bucket: bool = False):
        if batch_size < 1 or node_budget < 0:
            raise ValueError(f"batch_size must be >= 1 and node_budget >= 0, got {batch_size}, {node_budget}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.batch_size = batch_size
        self.node_budget = node_budget
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.even = even
        self.bucket = bucket
        self.epoch = 0
        self.skip = 0
        self._plan: tuple[int, list[list[list[int]]]] | None = None

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Use the permutation of ``epoch`` from now on, leaving out its first ``skip`` steps (a resumed epoch)."""
        self.epoch = epoch
        self.skip = skip

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.argsort(self.sizes, kind="stable") if self.bucket else np.arange(len(self.sizes))
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.sizes))
        if self.bucket:
            per_bin = self.batch_size
            if self.node_budget:
                per_bin = max(1, self.node_budget // max(1, int(np.median(self.sizes))))
            chunk = per_bin * self.num_replicas * self.BUCKET_BATCHES  # the same for any split over ranks
            order = np.concatenate([part[np.argsort(self.sizes[part], kind="stable")]
                                    for part in np.split(order, range(chunk, len(order), chunk))])
        return order

    def _shuffled_bins(self) -> list[list[int]]:
        """The epoch's bins; bucketed, shuffled a step (``num_replicas`` bins) at a time, the last step last."""
        bins = self._bins(self._order())
        if not (self.bucket and self.shuffle and bins):
            return bins
        replicas = self.num_replicas
        groups = [bins[i:i + replicas] for i in range(0, len(bins), replicas)]
        permutation = np.random.default_rng([self.seed, self.epoch, 1]).permutation(len(groups) - 1)
        return [b for g in [groups[i] for i in permutation] + groups[-1:] for b in g]

    def _bins(self, order: np.ndarray) -> list[list[int]]:
        if not self.node_budget:
            return [order[i:i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        bins: list[list[int]] = []
        current: list[int] = []
        load = 0
        for index in order.tolist():
            size = int(self.sizes[index])
            if current and load + size > self.node_budget:
                bins.append(current)
                current, load = [], 0
            current.append(index)
            load += size
        if current:
            bins.append(current)
        return bins

    def _deal(self, indices: list[int]) -> list[list[int]]:
        """Spread indices over ``num_replicas`` shards: by count round-robin, by nodes largest first."""
        shards: list[list[int]] = [[] for _ in range(self.num_replicas)]
        if not self.node_budget:
            for position, index in enumerate(indices):
                shards[position % self.num_replicas].append(index)
            return shards
        loads = [0] * self.num_replicas
        rank_of = {index: position for position, index in enumerate(indices)}
        for index in sorted(indices, key=lambda i: (-int(self.sizes[i]), rank_of[i])):
            target = min(range(self.num_replicas), key=lambda r: (loads[r], len(shards[r]), r))
            shards[target].append(index)
            loads[target] += int(self.sizes[index])
        return [sorted(shard, key=rank_of.__getitem__) for shard in shards]

    def steps(self) -> list[list[list[int]]]:
        """This epoch's steps, each a list of one batch per rank (empty batches only when ``even=False``)."""
        if self._plan is not None and self._plan[0] == self.epoch:
            return self._plan[1]
        bins = self._shuffled_bins()
        replicas = self.num_replicas
        steps: list[list[list[int]]] = []
        if not self.even:
            for start in range(0, len(bins), replicas):
                group = bins[start:start + replicas]
                steps.append(group + [[] for _ in range(replicas - len(group))])
        else:
            full = len(bins) // replicas * replicas
            steps = [bins[i:i + replicas] for i in range(0, full, replicas)]
            rest = [index for batch in bins[full:] for index in batch]
            if len(rest) >= replicas or (rest and steps and not self.node_budget):
                steps.append(self._deal(rest))
            elif rest:
                logger.debug("epoch %d: %d graphs left for %d ranks, skipped", self.epoch, len(rest), replicas)
            # Batch norm cannot train on a batch of one graph: by count, a last step that leaves some
            # rank fewer than two graphs is folded into the step before (or, alone, dealt out evenly).
            if not self.node_budget and steps and min(len(batch) for batch in steps[-1]) < 2:
                dealt = self._deal([index for batch in steps.pop() for index in batch])
                steps.append([batch + more for batch, more in zip(steps.pop(), dealt)] if steps else dealt)
        self._plan = (self.epoch, steps)
        return steps

    def __iter__(self) -> Iterator[list[int]]:
        for step in self.steps()[self.skip:]:
            if step[self.rank] or self.even:
                yield step[self.rank]

    def __len__(self) -> int:
        return sum(1 for step in self.steps()[self.skip:] if step[self.rank] or self.even)

    def max_batch_nodes(self) -> int:
        """The most nodes any batch of this epoch holds (for checking the budget)."""
        return max((int(self.sizes[batch].sum()) for step in self.steps() for batch in step if batch), default=0)

    @property
    def num_steps(self) -> int:
        """Steps of this epoch (the same on every rank when ``even``)."""
        return len(self.steps())

    def __repr__(self) -> str:
        how = f"node_budget={self.node_budget}" if self.node_budget else f"batch_size={self.batch_size}"
        return (f"GraphBatchSampler({len(self.sizes)} graphs, {how}, shuffle={self.shuffle}, "
                f"rank {self.rank}/{self.num_replicas})")


def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """A seeded random partition of ``range(n)`` into parts of the given fractions (the last takes the rest).

    Args:
        n: number of items.
        fractions: fraction of each part but the last is used as given; they must sum to <= 1.
        seed: the permutation seed.

    Returns:
        One sorted index array per fraction.
    """
    order = np.random.default_rng(seed).permutation(n)
    parts, start = [], 0
    for i, fraction in enumerate(fractions):
        end = n if i == len(fractions) - 1 else start + int(math.floor(fraction * n + 0.5))
        parts.append(np.sort(order[start:end]))
        start = end
    return parts
