"""Training datasets of program graphs: a processed cache on disk that re-runs for free, and batch samplers.

:class:`ProgramGraphDataset` is a PyTorch Geometric ``Dataset`` of :func:`ncc.graph.to_pyg` records made
from labelled :class:`~ncc.graph.ProgramGraph` s, written once as shards (:mod:`ncc.training.shards`)
under ``<root>/processed/<name>-<key>/`` and read item by item, so training holds only the batches in
flight however large the corpus. The key is the sha256 of the graph schema version
(:data:`ncc.graph.SCHEMA_VERSION`), this module's storage format, the feature encoder's content (e.g. a
fitted ``NodeVocabulary``) and the source data's own key. A second run with the same three finds the
folder and builds nothing; changing any of them processes again. The folder is written under a temporary
name and renamed into place, so a processing run that is killed leaves either no cache entry or a whole
one. A cache written by an earlier ncc as one ``.pt`` file (format 2) is converted into shards without
building any graph.

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
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch_geometric.data import Data, Dataset

from ncc.errors import DatasetError
from ncc.graph import SCHEMA_VERSION, ProgramGraph
from ncc.training.shards import EXAMPLE, GRAPH, SHARD_BYTES, Field, ShardReader, ShardWriter, field_for

logger = logging.getLogger(__name__)

#: Bumped when the processed file's layout changes, so old files stop matching.
DATASET_FORMAT = 3

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
        digests: dict[int, str] = {}  # a graph shared by several examples is hashed once
        for example in self._examples:
            if id(example.graph) not in digests:
                digests[id(example.graph)] = graph_digest(example.graph)
        self.key = _digest(*[(digests[id(e.graph)], np.asarray(e.y).tolist(),
                              None if e.aux is None else np.asarray(e.aux, dtype=np.float64).tolist(),
                              None if e.selector is None else np.asarray(e.selector, dtype=np.int64).tolist(),
                              None if e.mask is None else np.asarray(e.mask, dtype=bool).tolist(),
                              sorted((e.info or {}).items()))
                             for e in self._examples])

    def __len__(self) -> int:
        return len(self._examples)

    def examples(self) -> list[Example]:
        return list(self._examples)


class ProgramGraphDataset(Dataset):
    """Labelled program graphs as model inputs, processed once into shards on disk and read item by item.

    Each item is the compact ``Data`` of :func:`ncc.graph.to_pyg`: ``x`` (feature ids), ``edge_index``,
    ``edge_flow``, ``edge_position``, ``node_type``, ``y`` and, where the examples have them, ``aux``,
    ``selector``, ``mask`` and the ``info`` numbers. Items are read from the shards of
    :mod:`ncc.training.shards` when asked for, so the process holds only the index, whatever the corpus
    size; consecutive examples of one graph object (a data-flow task's roots) store that graph once.

    Args:
        root: the dataset folder; the processed folder goes to ``root/processed``.
        source: where the examples come from (its ``key`` names them).
        encoder: the feature encoder, with ``transform(graph) -> int [N]`` (e.g. a fitted NodeVocabulary).
        name: the folder name's stem (e.g. the split).
        transform: a PyG transform applied on access.
        progress: show a progress bar while processing.
        shard_bytes: the size of one shard file.

    Attributes:
        key: the cache key (hex sha256).
        path: the processed folder (``manifest.json``, ``index.npz``, ``shard-*.bin``).
        reprocessed: True when this instance built (or converted) the processed folder, False when it was found.
        manifest: the folder's manifest (counts of graphs, examples, nodes, edges, bytes).
    """

    def __init__(self, root: str | Path, source: GraphSource, encoder: Any, name: str = "data",
                 transform: Callable | None = None, progress: bool = False, shard_bytes: int = SHARD_BYTES):
        self.source = source
        self.encoder = encoder
        self.name = name
        self.key = _digest("ncc.ProgramGraphDataset", DATASET_FORMAT, SCHEMA_VERSION, feature_digest(encoder),
                           source.key)
        self._progress = progress
        self._shard_bytes = shard_bytes
        super().__init__(str(root), transform=transform, log=False)
        self.path = Path(self.processed_dir) / self.processed_file_names[0]
        self.reprocessed = False
        if not (self.path / "manifest.json").is_file():
            legacy = self._legacy_file()
            if legacy is not None:
                self._convert(legacy)
            else:
                self._build()
            self.reprocessed = True
        else:
            logger.info("%s: processed dataset found (%s)", self.name, self.path)
        self._reader = ShardReader(self.path)
        self.manifest = self._reader.manifest

    @property
    def raw_file_names(self) -> list[str]:
        return []

    @property
    def processed_file_names(self) -> list[str]:
        return [f"{self.name}-{self.key[:24]}"]

    def len(self) -> int:
        return len(self._reader)

    def get(self, idx: int) -> Data:
        data = Data()
        for key, value in self._reader.item(idx).items():  # in the order the examples had them
            data[key] = value if key == "num_nodes" else torch.from_numpy(value)
        return data

    @property
    def num_nodes_per_graph(self) -> np.ndarray:
        """``int64 [len]``: the node count of each item (for node-budget batching)."""
        sizes = self._reader.sizes
        return sizes if self._indices is None else sizes[np.asarray(self.indices(), dtype=np.int64)]

    def column(self, name: str) -> torch.Tensor:
        """Field ``name`` of every item concatenated as PyG collates it (without incrementing node ids).

        A fixed-size field (a graph label, ``aux``, ``steps``) comes from the index; others are read item by item.

        Raises:
            KeyError: the items have no such field.
        """
        field = next((f for f in self._reader.fields if f.name == name), None)
        if field is None:
            raise KeyError(f"the items of {self.name!r} have no field {name!r}")
        indices = None if self._indices is None else np.asarray(self.indices(), dtype=np.int64)
        if field.length == "fixed":
            values = self._reader.fixed[name] if indices is None else self._reader.fixed[name][indices]
            return torch.from_numpy(np.ascontiguousarray(values).reshape(-1, *field.shape[1:]))
        axis = 1 if name == "edge_index" else 0
        parts = [item[name] for item in self._reader.items(indices)]
        if not parts:
            return torch.from_numpy(np.zeros(field.item_shape(0, 0), dtype=field.dtype))
        return torch.from_numpy(np.concatenate(parts, axis=axis))

    @property
    def labels(self) -> torch.Tensor:
        """The ``y`` of every item, as stored (one per graph, or concatenated per node)."""
        return self.column("y")

    @property
    def _data(self) -> "_Columns":
        """Columns by attribute (``dataset._data.x``), for code written against the former ``InMemoryDataset``."""
        return _Columns(self)

    def _temporary(self) -> Path:
        return Path(self.processed_dir) / f".{self.path.name}.{os.getpid()}.tmp"

    def _commit(self, folder: Path) -> None:
        """Rename a finished folder into place (a folder another process finished first wins)."""
        try:
            os.replace(folder, self.path)
        except OSError:
            if not (self.path / "manifest.json").is_file():
                raise
            shutil.rmtree(folder, ignore_errors=True)

    def _write(self, items: Iterable[tuple[dict, int, bool, set, str]], total: int | None, what: str) -> None:
        """Write ``(arrays, num_nodes, new graph, per-node example fields, name)`` items as a shard folder."""
        from tqdm import tqdm

        processed = Path(self.processed_dir)
        processed.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(processed, self.path.name)
        folder = self._temporary()
        shutil.rmtree(folder, ignore_errors=True)
        writer = None
        try:
            for arrays, nodes, new_graph, per_node, name in tqdm(items, desc=f"{what} {self.name}", unit="graph",
                                                                  total=total, disable=not self._progress,
                                                                  leave=False):
                if writer is None:
                    writer = ShardWriter(folder, _fields(arrays, nodes, per_node), list(arrays),
                                         self._shard_bytes)
                writer.add(arrays, nodes, new_graph, name)
            if writer is None:
                raise DatasetError(f"no examples in split {self.name!r}", str(self.root))
            manifest = writer.close({"key": self.key, "schema_version": SCHEMA_VERSION,
                                     "dataset_format": DATASET_FORMAT, "features": feature_digest(self.encoder),
                                     "source": self.source.key})
            self._commit(folder)
        except BaseException:
            if writer is not None:
                writer.abort()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        logger.info("%s: %d examples of %d graphs processed (%.1f MB)", self.name, manifest["examples"],
                    manifest["graphs"], manifest["bytes"] / 1e6)

    def _build(self) -> None:
        logger.info("%s: processing into %s", self.name, self.path)
        self._write(self._records(), len(self.source) if hasattr(self.source, "__len__") else None, "processing")

    def _records(self) -> Iterator[tuple[dict, int, bool, set, str]]:
        from ncc.graph import to_pyg

        last_graph, ids = None, None
        for example in self.source.examples():
            new_graph = example.graph is not last_graph
            if new_graph:
                last_graph, ids = example.graph, _Ids(np.asarray(self.encoder.transform(example.graph)))
            record = to_pyg(example.graph, ids, y=example.y, aux=example.aux, selector=example.selector,
                            mask=example.mask, compact=True)
            for key, value in (example.info or {}).items():
                record[key] = torch.tensor([value])
            arrays = {key: value.numpy() if isinstance(value, torch.Tensor) else value for key, value in record.items()}
            per_node = {name for name, value in (("y", example.y), ("selector", example.selector),
                                                 ("mask", example.mask))
                        if value is not None and np.ndim(value) > 0}
            yield arrays, int(record.num_nodes), new_graph, per_node, example.name

    def _legacy_file(self) -> Path | None:
        """The same data in the single-file format of ncc before shards (format 2), if a cache holds it."""
        key = _digest("ncc.ProgramGraphDataset", 2, SCHEMA_VERSION, feature_digest(self.encoder), self.source.key)
        path = Path(self.processed_dir) / f"{self.name}-{key[:24]}.pt"
        return path if path.is_file() else None

    def _convert(self, legacy: Path) -> None:
        """Shards from a format-2 file, without building any graph (consecutive equal graphs stored once)."""
        from torch_geometric.data.separate import separate

        logger.info("%s: converting %s into shards", self.name, legacy.name)
        try:
            data_dict, slices, cls = torch.load(legacy, weights_only=False)
            data = cls.from_dict(data_dict)
        except Exception as error:
            raise DatasetError(f"cannot read processed dataset: {error}", str(legacy)) from None
        node_slices = slices["x"] if "x" in slices else slices["node_type"]
        count = len(node_slices) - 1
        order = list(data_dict)
        per_node = {name for name in ("y", "selector", "mask")
                    if name in slices and torch.equal(slices[name], node_slices)}

        def items() -> Iterator[tuple[dict, int, bool, set, str]]:
            last = None
            for index in range(count):
                item = separate(cls=cls, batch=data, idx=index, slice_dict=slices, decrement=False)
                found = dict(item.items())
                arrays = {key: found[key].numpy() if isinstance(found[key], torch.Tensor) else found[key]
                          for key in order if key in found}  # the examples' own key order
                graph = [arrays[key] for key in arrays if key in GRAPH_FIELDS]
                new_graph = last is None or len(graph) != len(last) or not all(
                    a.shape == b.shape and np.array_equal(a, b) for a, b in zip(graph, last))
                last = graph
                yield arrays, int(item.num_nodes), new_graph, per_node, f"{legacy.name}[{index}]"

        self._write(items(), count, "converting")
        del data


class _Columns:
    """``dataset._data.<field>``: :meth:`ProgramGraphDataset.column` by attribute."""

    def __init__(self, dataset: ProgramGraphDataset):
        self._dataset = dataset

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self._dataset.column(name)
        except KeyError as error:
            raise AttributeError(str(error)) from None


class _Ids:
    """A feature encoder that gives ids already computed (one graph's, for each of its examples)."""

    def __init__(self, ids: np.ndarray):
        self.ids = ids

    def transform(self, graph: ProgramGraph) -> np.ndarray:
        return self.ids


#: The fields of an item that belong to its program graph (shared by the graph's examples).
GRAPH_FIELDS = ("x", "edge_index", "edge_flow", "edge_position", "node_type")


def _fields(arrays: Mapping[str, Any], nodes: int, per_node: set) -> list[Field]:
    """The shard fields of the first item: graph fields by node or edge, example fields per node or fixed."""
    edges = int(arrays["edge_index"].shape[1]) if "edge_index" in arrays else 0
    fields = []
    for name, value in arrays.items():
        if name == "num_nodes":
            continue
        array = np.asarray(value)
        if name in GRAPH_FIELDS:
            length = "edges" if name.startswith("edge_") else "nodes"
            fields.append(field_for(name, array, GRAPH, length, nodes, edges))
        else:
            fields.append(field_for(name, array, EXAMPLE, "nodes" if name in per_node else "fixed", nodes, edges))
    return fields


def _remove_stale_temporaries(folder: Path, stem: str) -> None:
    """Remove the temporary folders of ``stem`` left by processes that are gone (killed while processing)."""
    for path in folder.glob(f".{stem}.*.tmp"):
        try:
            pid = int(path.name.rsplit(".", 2)[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, PermissionError, IndexError):
            continue


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
