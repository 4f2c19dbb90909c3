"""Processed datasets on disk: shards of per-graph records, read one item at a time (out of core).

A dataset folder holds::

    manifest.json        format, the fields of an item (name, dtype, shape, stored dtype, part), the shards
    index.npz            per graph: shard, byte offset, nodes, edges; per example: its graph, shard, byte
                         offset, and the fixed-size fields (a graph label, ``aux``, ``steps``) stacked
    shard-00000.bin ...  records of about ``shard_bytes`` each

A *graph record* holds the arrays every example of one program graph shares (``x``, ``edge_index``,
``edge_flow``, ``edge_position``, ``node_type``), written once; an *example record* holds what differs
between the examples of a graph and has one entry per node (a node label, ``selector``, ``mask``). So the
ten root examples of a data-flow graph store the graph once and carry only their selector, labels and mask.
Arrays are stored in the narrowest dtype that holds their values (``int32`` node ids and feature ids,
``int8`` edge flows and node types), checked on write, and widened back on read: an item reads back
exactly as written.

Reading is ``os.preadv`` of one or two byte ranges per item into a fresh buffer: nothing is mapped, so the
process holds only the index and the items in flight, whatever the corpus size; the operating system's
page cache keeps hot shards in memory without counting against the process. The writer builds a folder
that the caller renames into place (see :class:`~ncc.training.datasets.ProgramGraphDataset`).
numpy only: no torch here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from ncc.errors import DatasetError

__all__ = ["Field", "ShardWriter", "ShardReader", "SHARD_FORMAT", "SHARD_BYTES", "GRAPH", "EXAMPLE"]

#: Bumped when the folder's layout changes.
SHARD_FORMAT = 1
#: Default size of one shard file.
SHARD_BYTES = 64 << 20
GRAPH, EXAMPLE = "graph", "example"
#: Stored dtypes narrower than the item's, for the fields the program graphs always have.
NARROW = {"edge_index": "int32", "edge_flow": "int8", "edge_position": "int32", "node_type": "int8",
          "x": "int32", "selector": "int8"}
MANIFEST, INDEX = "manifest.json", "index.npz"


@dataclass(frozen=True)
class Field:
    """One array of an item.

    Attributes:
        name: its key in the item.
        part: ``graph`` (shared by a graph's examples) or ``example``.
        length: ``nodes`` or ``edges`` (one entry per node or edge, on disk) or ``fixed`` (in the index).
        shape: the item's shape, ``-1`` standing for the node or edge count (``[2, -1]`` for ``edge_index``).
        dtype: the item's numpy dtype.
        store: the dtype on disk.
    """

    name: str
    part: str
    length: str
    shape: tuple
    dtype: str
    store: str

    def count(self, nodes: int, edges: int) -> int:
        """Entries of this field in one record."""
        size = nodes if self.length == "nodes" else edges
        return math.prod(size if d == -1 else d for d in self.shape)

    def item_shape(self, nodes: int, edges: int) -> tuple:
        size = nodes if self.length == "nodes" else edges
        return tuple(size if d == -1 else d for d in self.shape)


def field_for(name: str, array: np.ndarray, part: str, length: str, nodes: int, edges: int) -> Field:
    """The field of an array as the first item shows it (its count axis: the one that equals ``nodes``/``edges``)."""
    shape = list(array.shape)
    if length != "fixed":
        size = nodes if length == "nodes" else edges
        axis = 1 if name == "edge_index" else 0
        if len(shape) <= axis or shape[axis] != size:
            raise DatasetError(f"field {name!r} of shape {tuple(shape)} has no axis of {length} ({size})")
        shape[axis] = -1
    store = NARROW.get(name, array.dtype.str) if np.issubdtype(array.dtype, np.integer) else array.dtype.str
    return Field(name, part, length, tuple(shape), array.dtype.str, np.dtype(store).str)


def _stored(field: Field, array: np.ndarray, nodes: int, edges: int, where: str) -> bytes:
    if array.dtype.str != field.dtype or array.shape != field.item_shape(nodes, edges):
        raise DatasetError(f"{where}: field {field.name!r} is {array.dtype} {array.shape}, the first example's "
                           f"{np.dtype(field.dtype)} {field.shape}")
    if field.store != field.dtype and array.size:
        info = np.iinfo(np.dtype(field.store))
        if array.min() < info.min or array.max() > info.max:
            raise DatasetError(f"{where}: field {field.name!r} holds values outside {np.dtype(field.store)}")
    return np.ascontiguousarray(array, dtype=np.dtype(field.store)).tobytes()


class ShardWriter:
    """Writes items into a new folder of shards; :meth:`close` writes the index and manifest last.

    Args:
        folder: the folder to create (it must not exist).
        fields: every field of an item, in the item's key order (``num_nodes`` is kept apart).
        keys: the item's keys in order, ``num_nodes`` included, to rebuild items the same way.
        shard_bytes: start a new shard once one holds this many bytes.
    """

    def __init__(self, folder: str | os.PathLike, fields: list[Field], keys: list[str],
                 shard_bytes: int = SHARD_BYTES):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True)
        self.fields = list(fields)
        self.keys = list(keys)
        self.shard_bytes = shard_bytes
        self._graph_fields = [f for f in self.fields if f.part == GRAPH]
        self._node_fields = [f for f in self.fields if f.part == EXAMPLE and f.length != "fixed"]
        self._fixed_fields = [f for f in self.fields if f.length == "fixed"]
        for f in self._fixed_fields:
            if f.part != EXAMPLE:
                raise DatasetError(f"field {f.name!r}: fixed-size fields belong to the example")
        self._graphs: dict[str, list[int]] = {"shard": [], "offset": [], "nodes": [], "edges": []}
        self._examples: dict[str, list[int]] = {"graph": [], "shard": [], "offset": []}
        self._fixed: dict[str, list[np.ndarray]] = {f.name: [] for f in self._fixed_fields}
        self._shards: list[int] = []
        self._stream = None

    def _write(self, data: bytes) -> tuple[int, int]:
        """Append a record; returns (shard, offset)."""
        if self._stream is None or self._shards[-1] >= self.shard_bytes:
            self._finish_shard()
            self._stream = open(self.folder / f"shard-{len(self._shards):05d}.bin", "wb", buffering=1 << 20)
            self._shards.append(0)
        offset = self._shards[-1]
        self._stream.write(data)
        self._shards[-1] += len(data)
        return len(self._shards) - 1, offset

    def _finish_shard(self) -> None:
        if self._stream is not None:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            self._stream = None

    def add(self, item: Mapping[str, np.ndarray], nodes: int, new_graph: bool, where: str = "") -> None:
        """Append one example; with ``new_graph`` its graph fields start a new graph record, else it shares
        the last graph's (and its graph fields are not read)."""
        if list(item) != self.keys:
            raise DatasetError(f"{where}: fields {', '.join(item)} differ from the first example's "
                               f"({', '.join(self.keys)})")
        if new_graph:
            edges = int(item["edge_index"].shape[1]) if "edge_index" in item else 0
            data = b"".join(_stored(f, np.asarray(item[f.name]), nodes, edges, where) for f in self._graph_fields)
            shard, offset = self._write(data)
            for key, value in zip(("shard", "offset", "nodes", "edges"), (shard, offset, nodes, edges)):
                self._graphs[key].append(value)
        elif not self._graphs["nodes"]:
            raise DatasetError(f"{where}: the first example must start a graph")
        nodes, edges = self._graphs["nodes"][-1], self._graphs["edges"][-1]
        shard, offset = -1, 0
        if self._node_fields:
            data = b"".join(_stored(f, np.asarray(item[f.name]), nodes, edges, where) for f in self._node_fields)
            shard, offset = self._write(data)
        for key, value in zip(("graph", "shard", "offset"), (len(self._graphs["nodes"]) - 1, shard, offset)):
            self._examples[key].append(value)
        for f in self._fixed_fields:
            array = np.asarray(item[f.name])
            if array.dtype.str != f.dtype or array.shape != f.shape:
                raise DatasetError(f"{where}: field {f.name!r} is {array.dtype} {array.shape}, the first "
                                   f"example's {np.dtype(f.dtype)} {f.shape}")
            self._fixed[f.name].append(array)

    def __len__(self) -> int:
        return len(self._examples["graph"])

    def close(self, extra: Mapping | None = None) -> dict:
        """Write the index and the manifest (``extra`` added to it); returns the manifest."""
        self._finish_shard()
        arrays = {f"graph_{k}": np.asarray(v, dtype=np.int32 if k == "shard" else np.int64)
                  for k, v in self._graphs.items()}
        arrays.update({f"example_{k}": np.asarray(v, dtype=np.int32 if k == "shard" else np.int64)
                       for k, v in self._examples.items()})
        for f in self._fixed_fields:
            arrays[f"fixed_{f.name}"] = (np.stack(self._fixed[f.name]) if self._fixed[f.name]
                                         else np.zeros((0, *f.shape), dtype=f.dtype))
        with open(self.folder / INDEX, "wb") as stream:
            np.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        manifest = {"format": SHARD_FORMAT, "keys": self.keys,
                    "fields": [{**asdict(f), "shape": list(f.shape)} for f in self.fields],
                    "shards": [{"file": f"shard-{i:05d}.bin", "bytes": size} for i, size in enumerate(self._shards)],
                    "graphs": len(self._graphs["nodes"]), "examples": len(self),
                    "nodes": int(np.sum(self._graphs["nodes"], dtype=np.int64)),
                    "edges": int(np.sum(self._graphs["edges"], dtype=np.int64)),
                    "bytes": int(sum(self._shards)), **(extra or {})}
        with open(self.folder / MANIFEST, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(manifest, indent=1))
            stream.flush()
            os.fsync(stream.fileno())
        return manifest

    def abort(self) -> None:
        """Close the open shard without writing an index (the caller removes the folder)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class ShardReader:
    """Reads the items of a shard folder written by :class:`ShardWriter`.

    Raises:
        DatasetError: no manifest, another format, or a shard missing or of the wrong size.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        try:
            self.manifest = json.loads((self.folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DatasetError(f"not a processed dataset folder: {error}", str(self.folder)) from None
        if self.manifest.get("format") != SHARD_FORMAT:
            raise DatasetError(f"shard format {self.manifest.get('format')!r}, expected {SHARD_FORMAT}",
                               str(self.folder))
        for shard in self.manifest["shards"]:
            path = self.folder / shard["file"]
            size = path.stat().st_size if path.is_file() else None
            if size != shard["bytes"]:
                raise DatasetError(f"shard {shard['file']} has {size} bytes, the manifest says {shard['bytes']}",
                                   str(self.folder))
        self.fields = [Field(**{**f, "shape": tuple(f["shape"])}) for f in self.manifest["fields"]]
        self.keys = list(self.manifest["keys"])
        try:
            with np.load(self.folder / INDEX) as index:
                arrays = {name: index[name] for name in index.files}
        except (OSError, ValueError) as error:
            raise DatasetError(f"cannot read the index: {error}", str(self.folder)) from None
        self.graph_shard, self.graph_offset = arrays["graph_shard"], arrays["graph_offset"]
        self.graph_nodes, self.graph_edges = arrays["graph_nodes"], arrays["graph_edges"]
        self.example_graph, self.example_shard = arrays["example_graph"], arrays["example_shard"]
        self.example_offset = arrays["example_offset"]
        self.fixed = {f.name: arrays[f"fixed_{f.name}"] for f in self.fields if f.length == "fixed"}
        self._graph_layout = self._layout([f for f in self.fields if f.part == GRAPH])
        self._node_layout = self._layout([f for f in self.fields if f.part == EXAMPLE and f.length != "fixed"])
        self._files = [shard["file"] for shard in self.manifest["shards"]]
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()
        #: Nodes of each example's graph.
        self.sizes = self.graph_nodes[self.example_graph]

    def __len__(self) -> int:
        return len(self.example_graph)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fds": {}}

    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():  # a forked DataLoader worker opens its own files
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(shard)
        if fd is None:
            fd = self._fds[shard] = os.open(self.folder / self._files[shard], os.O_RDONLY)
        return fd

    def _read(self, shard: int, offset: int, size: int) -> bytearray:
        buffer = bytearray(size)
        view, done = memoryview(buffer), 0
        while done < size:
            got = os.preadv(self._fd(shard), [view[done:]], offset + done)
            if got <= 0:
                raise DatasetError(f"shard {self._files[shard]} ends before byte {offset + size}", str(self.folder))
            done += got
        return buffer

    @staticmethod
    def _layout(fields: list[Field]) -> list[tuple[Field, np.dtype, np.dtype]]:
        return [(f, np.dtype(f.store), np.dtype(f.dtype)) for f in fields]

    @staticmethod
    def _size(layout: list[tuple[Field, np.dtype, np.dtype]], nodes: int, edges: int) -> int:
        return sum(f.count(nodes, edges) * store.itemsize for f, store, _ in layout)

    @staticmethod
    def _parse(layout: list[tuple[Field, np.dtype, np.dtype]], buffer: bytearray, nodes: int, edges: int,
               out: dict) -> None:
        position = 0
        for f, store, dtype in layout:
            count = f.count(nodes, edges)
            array = np.frombuffer(buffer, dtype=store, count=count, offset=position)
            if store != dtype:
                array = array.astype(dtype)
            elif position % store.itemsize:  # torch wants aligned data
                array = array.copy()
            position += count * store.itemsize
            out[f.name] = array.reshape(f.item_shape(nodes, edges))

    def item(self, index: int) -> dict[str, np.ndarray | int]:
        """The arrays of example ``index`` (and ``num_nodes``), in the item's key order."""
        graph = int(self.example_graph[index])
        nodes, edges = int(self.graph_nodes[graph]), int(self.graph_edges[graph])
        arrays: dict[str, np.ndarray | int] = {"num_nodes": nodes}
        if self._graph_layout:
            buffer = self._read(int(self.graph_shard[graph]), int(self.graph_offset[graph]),
                                self._size(self._graph_layout, nodes, edges))
            self._parse(self._graph_layout, buffer, nodes, edges, arrays)
        if self._node_layout:
            buffer = self._read(int(self.example_shard[index]), int(self.example_offset[index]),
                                self._size(self._node_layout, nodes, edges))
            self._parse(self._node_layout, buffer, nodes, edges, arrays)
        for name, values in self.fixed.items():
            arrays[name] = values[index].copy()
        return {key: arrays[key] for key in self.keys}

    def items(self, indices: np.ndarray | None = None) -> Iterator[dict]:
        """Items in order (all, or those of ``indices``)."""
        for index in range(len(self)) if indices is None else indices:
            yield self.item(int(index))

    def close(self) -> None:
        """Close the open shard files (reading again reopens them)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __del__(self) -> None:
        try:
            if self._pid == os.getpid():
                self.close()
        except Exception:  # interpreter shutdown
            pass
