"""Conversions of a :class:`ProgramGraph` to and from networkx, JSON and a compressed numpy container.

Every conversion here is an exact round trip: ``from_x(to_x(g)).equals(g)`` holds and the metadata
survives too (as long as it is JSON-serialisable, for the JSON and npz formats). The PyTorch Geometric
and Graphviz conversions live in :mod:`ncc.graph.convert_pyg` and :mod:`ncc.graph.convert_dot` and are
re-exported here, so ``from ncc.graph.convert import to_pyg, to_dot`` works; neither imports torch
until called. :func:`save` and :func:`load` pick the format from the file suffix.

Formats:
    networkx: a ``MultiDiGraph`` whose nodes are the ints ``0..N-1`` with attributes ``type`` (name from
        ``NODE_TYPES``), ``text``, ``full_text``, ``function`` and ``block``; whose edges carry ``flow``
        (name from ``EDGE_FLOWS``) and ``position`` and are keyed by their index in the edge list; and
        whose graph attributes are ``function_names``, ``module_name``, ``schema_version`` and
        ``metadata``.
    JSON: one object, ``{"format": "ncc.program_graph", "schema_version": 1, "module_name": ...,
        "function_names": [...], "metadata": {...}, "node_types": [...], "edge_flows": [...],
        "nodes": {"type", "text", "full_text", "function", "block"}, "edges": {"source", "target",
        "flow", "position"}}`` where every entry of ``nodes`` and ``edges`` is a list (a column).
        Node types and edge flows are stored as codes; ``node_types`` and ``edge_flows`` name them.
    npz: ``np.savez_compressed`` of the numeric arrays under their ``ProgramGraph`` names, each text
        column as UTF-8 bytes joined (``<name>_data``, ``uint8``) with ``int64`` offsets
        (``<name>_offsets``, length N + 1), and a JSON ``header`` (``uint8`` bytes) with the format marker,
        schema version, module name, function names and metadata. It loads without pickle.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ncc.fileio import atomic_write
from ncc.errors import GraphBuildError, InputError
from ncc.graph.convert_dot import to_dot
from ncc.graph.convert_pyg import from_pyg, to_pyg
from ncc.graph.program_graph import EDGE_FLOWS, NODE_TYPES, SCHEMA_VERSION, ProgramGraph

if TYPE_CHECKING:
    import networkx as nx

logger = logging.getLogger(__name__)

FORMAT = "ncc.program_graph"

__all__ = ["FORMAT", "save", "load", "to_networkx", "from_networkx", "to_json", "from_json", "save_json", "load_json",
           "save_npz", "load_npz", "to_pyg", "from_pyg", "to_dot"]

_NUMERIC = {"node_type": np.int8, "node_function": np.int32, "node_block": np.int32,
            "edge_index": np.int32, "edge_flow": np.int8, "edge_position": np.int32}
_TEXT = ("node_text", "node_full_text")


def _str_array(values) -> np.ndarray:
    """An ``object`` array of str, one dimension, whatever the strings look like."""
    values = list(values)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _check_version(version: Any, path: str | None) -> None:
    """Raise unless ``version`` is a schema version this code can read."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise GraphBuildError(f"schema_version must be an int, got {version!r}", path)
    if version > SCHEMA_VERSION:
        raise GraphBuildError(f"program graph schema version {version} is newer than the supported "
                              f"version {SCHEMA_VERSION}; upgrade ncc to read it", path)
    if version < 1:
        raise GraphBuildError(f"unknown program graph schema version {version}", path)


def _codes(names, vocabulary: tuple[str, ...], what: str, path: str | None) -> np.ndarray:
    """Map names (``"data"``) to their codes in ``vocabulary``."""
    lookup = {name: code for code, name in enumerate(vocabulary)}
    try:
        return np.array([lookup[name] for name in names], dtype=np.int64)
    except (KeyError, TypeError) as error:
        raise GraphBuildError(f"unknown {what} {error.args[0]!r}; expected one of {vocabulary}", path) from None


def _assemble(columns: Mapping[str, Any], function_names, module_name, metadata, path: str | None,
              validate: bool) -> ProgramGraph:
    """Make a :class:`ProgramGraph` from plain columns, cast to the schema's dtypes."""
    arrays = {}
    try:
        for name, dtype in _NUMERIC.items():
            array = np.asarray(columns[name])
            if array.size and not np.issubdtype(array.dtype, np.integer):
                raise GraphBuildError(f"{name} must hold integers, got dtype {array.dtype}", path)
            if name == "edge_index":
                array = array.reshape(2, -1)
            arrays[name] = array.astype(dtype, copy=False)
    except ValueError as error:
        raise GraphBuildError(f"malformed program graph column: {error}", path) from None
    for name in _TEXT:
        arrays[name] = _str_array(columns[name])
    if not isinstance(module_name, str):
        raise GraphBuildError(f"module_name must be a str, got {module_name!r}", path)
    if not isinstance(metadata, dict):
        raise GraphBuildError(f"metadata must be a dict, got {type(metadata).__name__}", path)
    graph = ProgramGraph(**arrays, function_names=tuple(function_names), module_name=module_name,
                         metadata=metadata)
    if validate:
        try:
            graph.validate()
        except GraphBuildError as error:
            raise GraphBuildError(error.message, path or error.path) from None
    return graph


# ---------------------------------------------------------------------------------------------- networkx

def to_networkx(graph: ProgramGraph) -> nx.MultiDiGraph:
    """Convert a program graph to a networkx multigraph.

    Args:
        graph: the program graph.

    Returns:
        A ``MultiDiGraph`` with nodes ``0..N-1`` in order, edges added in order and keyed by their edge
        index, and the graph's function names, module name, schema version and metadata (a deep copy)
        as graph attributes.
    """
    import networkx as nx

    g = nx.MultiDiGraph(function_names=list(graph.function_names), module_name=graph.module_name,
                        schema_version=SCHEMA_VERSION, metadata=copy.deepcopy(graph.metadata))
    types = graph.node_type.tolist()
    functions = graph.node_function.tolist()
    blocks = graph.node_block.tolist()
    g.add_nodes_from((i, {"type": NODE_TYPES[types[i]], "text": graph.node_text[i],
                          "full_text": graph.node_full_text[i], "function": functions[i],
                          "block": blocks[i]}) for i in range(graph.num_nodes))
    sources, targets = graph.edge_index.tolist()
    flows = graph.edge_flow.tolist()
    positions = graph.edge_position.tolist()
    g.add_edges_from((sources[e], targets[e], e, {"flow": EDGE_FLOWS[flows[e]], "position": positions[e]})
                     for e in range(graph.num_edges))
    return g


def from_networkx(g: nx.MultiDiGraph | nx.DiGraph, validate: bool = True) -> ProgramGraph:
    """Convert a networkx graph made by :func:`to_networkx` (or laid out like one) to a program graph.

    Nodes are taken in sorted order when they are exactly the ints ``0..N-1``, otherwise in iteration
    order. Edges are ordered by key when every key is a distinct int (as :func:`to_networkx` writes
    them), otherwise in iteration order. Missing ``full_text`` defaults to ``text``, missing
    ``function`` and ``block`` to -1, missing ``position`` to 0.

    Args:
        g: the networkx graph; a ``DiGraph`` works too.
        validate: check the result with :meth:`ProgramGraph.validate`.

    Returns:
        The program graph.

    Raises:
        GraphBuildError: a node or edge lacks ``type``/``text``/``flow``, names an unknown type or flow,
            the schema version is newer than this code, or the result fails validation.
    """
    _check_version(g.graph.get("schema_version", SCHEMA_VERSION), None)
    nodes = list(g.nodes)
    if set(nodes) == set(range(len(nodes))):
        nodes = list(range(len(nodes)))
    index = {node: i for i, node in enumerate(nodes)}
    attrs = [g.nodes[node] for node in nodes]
    try:
        columns: dict[str, Any] = {
            "node_type": _codes([a["type"] for a in attrs], NODE_TYPES, "node type", None),
            "node_text": [a["text"] for a in attrs],
            "node_full_text": [a.get("full_text", a["text"]) for a in attrs],
            "node_function": [a.get("function", -1) for a in attrs],
            "node_block": [a.get("block", -1) for a in attrs],
        }
    except KeyError as error:
        raise GraphBuildError(f"a networkx node lacks the attribute {error.args[0]!r}") from None
    if g.is_multigraph():
        edges = list(g.edges(keys=True, data=True))
        keys = [key for _, _, key, _ in edges]
        if all(isinstance(k, int) and not isinstance(k, bool) for k in keys) and len(set(keys)) == len(keys):
            edges.sort(key=lambda edge: edge[2])
        edges = [(u, v, data) for u, v, _, data in edges]
    else:
        edges = list(g.edges(data=True))
    try:
        columns["edge_index"] = np.array([[index[u] for u, _, _ in edges], [index[v] for _, v, _ in edges]],
                                         dtype=np.int64).reshape(2, len(edges))
        columns["edge_flow"] = _codes([data["flow"] for _, _, data in edges], EDGE_FLOWS, "edge flow", None)
    except KeyError as error:
        raise GraphBuildError(f"a networkx edge lacks the attribute {error.args[0]!r}") from None
    columns["edge_position"] = [data.get("position", 0) for _, _, data in edges]
    return _assemble(columns, g.graph.get("function_names", ()), g.graph.get("module_name", "module"),
                     copy.deepcopy(g.graph.get("metadata", {})), None, validate)


# -------------------------------------------------------------------------------------------------- JSON

def to_json(graph: ProgramGraph) -> dict:
    """Convert a program graph to a JSON-serialisable dict of columns.

    Args:
        graph: the program graph.

    Returns:
        A dict with the ``format`` marker, ``schema_version``, the module and function names, the
        metadata (a deep copy), and the ``nodes`` and ``edges`` columns as lists.
    """
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "module_name": graph.module_name,
        "function_names": list(graph.function_names),
        "metadata": copy.deepcopy(graph.metadata),
        "node_types": list(NODE_TYPES),
        "edge_flows": list(EDGE_FLOWS),
        "nodes": {
            "type": graph.node_type.tolist(),
            "text": list(graph.node_text),
            "full_text": list(graph.node_full_text),
            "function": graph.node_function.tolist(),
            "block": graph.node_block.tolist(),
        },
        "edges": {
            "source": graph.edge_index[0].tolist(),
            "target": graph.edge_index[1].tolist(),
            "flow": graph.edge_flow.tolist(),
            "position": graph.edge_position.tolist(),
        },
    }


def from_json(data: Mapping[str, Any], path: str | os.PathLike | None = None,
              validate: bool = True) -> ProgramGraph:
    """Convert a dict made by :func:`to_json` back to a program graph.

    Args:
        data: the parsed JSON object.
        path: the file it came from, named in errors.
        validate: check the result with :meth:`ProgramGraph.validate`.

    Returns:
        The program graph.

    Raises:
        GraphBuildError: not an ncc program graph, a schema version newer than this code, a missing or
            malformed column, or a graph that fails validation.
    """
    where = None if path is None else str(path)
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        raise GraphBuildError(f"not an ncc program graph (format {found!r}, expected {FORMAT!r})", where)
    _check_version(data.get("schema_version"), where)
    for key, vocabulary in (("node_types", NODE_TYPES), ("edge_flows", EDGE_FLOWS)):
        if tuple(data.get(key, vocabulary)) != vocabulary:
            raise GraphBuildError(f"{key} {data[key]!r} differ from this version's {list(vocabulary)}", where)
    try:
        nodes, edges = data["nodes"], data["edges"]
        columns = {
            "node_type": nodes["type"], "node_text": nodes["text"], "node_full_text": nodes["full_text"],
            "node_function": nodes["function"], "node_block": nodes["block"],
            "edge_index": [edges["source"], edges["target"]], "edge_flow": edges["flow"],
            "edge_position": edges["position"],
        }
        names, module, metadata = data["function_names"], data["module_name"], data.get("metadata", {})
    except (KeyError, TypeError) as error:
        raise GraphBuildError(f"program graph JSON lacks {error.args[0]!r}", where) from None
    if len(columns["edge_index"][0]) != len(columns["edge_index"][1]):
        raise GraphBuildError("edges.source and edges.target differ in length", where)
    return _assemble(columns, names, module, copy.deepcopy(metadata), where, validate)


def save_json(graph: ProgramGraph, path: str | os.PathLike, indent: int | None = None) -> Path:
    """Write a program graph as JSON, atomically (a temporary file, then ``os.replace``).

    Args:
        graph: the program graph.
        path: the file to write; its folder is created if needed.
        indent: indentation for humans; None writes one compact line.

    Returns:
        The path written.

    Raises:
        GraphBuildError: the metadata is not JSON-serialisable.
    """
    data = to_json(graph)
    try:
        text = json.dumps(data, ensure_ascii=False, indent=indent,
                          separators=None if indent is not None else (",", ":"))
    except (TypeError, ValueError) as error:
        raise GraphBuildError(f"cannot write the graph as JSON: {error}", str(path)) from None
    written = atomic_write(path, lambda stream: stream.write(text), "w")
    logger.debug("wrote %s (%d nodes, %d edges)", written, graph.num_nodes, graph.num_edges)
    return written


def load_json(path: str | os.PathLike, validate: bool = True) -> ProgramGraph:
    """Read a program graph written by :func:`save_json`.

    Args:
        path: the JSON file.
        validate: check the result with :meth:`ProgramGraph.validate`.

    Returns:
        The program graph.

    Raises:
        InputError: the file is missing or unreadable.
        GraphBuildError: the file is not valid JSON or not an ncc program graph of a readable version.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        raise InputError(f"cannot read program graph: {error.strerror}", str(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GraphBuildError(f"not valid JSON: {error}", str(path)) from None
    return from_json(data, path, validate)


# --------------------------------------------------------------------------------------------------- npz

def _join_text(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encode strings as one UTF-8 byte array and ``int64`` offsets (length N + 1)."""
    encoded = [s.encode("utf-8") for s in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.array([len(b) for b in encoded], dtype=np.int64), out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _split_text(data: np.ndarray, offsets: np.ndarray, name: str, path: str) -> np.ndarray:
    """Invert :func:`_join_text`."""
    if data.dtype != np.uint8 or offsets.ndim != 1 or offsets.size == 0 or offsets[0] != 0 \
            or offsets[-1] != data.size or np.any(np.diff(offsets) < 0):
        raise GraphBuildError(f"corrupt text column {name}", path)
    blob = data.tobytes()
    bounds = offsets.tolist()
    try:
        return _str_array(blob[bounds[i]:bounds[i + 1]].decode("utf-8") for i in range(len(bounds) - 1))
    except UnicodeDecodeError:
        raise GraphBuildError(f"text column {name} is not UTF-8", path) from None


def save_npz(graph: ProgramGraph, path: str | os.PathLike) -> Path:
    """Write a program graph as a compressed numpy container, atomically, without pickled objects.

    The file is written at exactly ``path`` (numpy's habit of appending ``.npz`` does not apply).

    Args:
        graph: the program graph.
        path: the file to write; its folder is created if needed.

    Returns:
        The path written.

    Raises:
        GraphBuildError: the metadata is not JSON-serialisable.
    """
    header = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "module_name": graph.module_name,
              "function_names": list(graph.function_names), "metadata": graph.metadata}
    try:
        header_bytes = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise GraphBuildError(f"cannot write the graph's metadata as JSON: {error}", str(path)) from None
    arrays = {"header": np.frombuffer(header_bytes, dtype=np.uint8)}
    for name in _NUMERIC:
        arrays[name] = getattr(graph, name)
    for name in _TEXT:
        arrays[f"{name}_data"], arrays[f"{name}_offsets"] = _join_text(getattr(graph, name))
    written = atomic_write(path, lambda stream: np.savez_compressed(stream, **arrays), "wb")
    logger.debug("wrote %s (%d nodes, %d edges)", written, graph.num_nodes, graph.num_edges)
    return written


def load_npz(path: str | os.PathLike, validate: bool = True) -> ProgramGraph:
    """Read a program graph written by :func:`save_npz`.

    Args:
        path: the ``.npz`` file.
        validate: check the result with :meth:`ProgramGraph.validate`.

    Returns:
        The program graph.

    Raises:
        InputError: the file is missing or unreadable.
        GraphBuildError: the file is not an npz archive of an ncc program graph of a readable version.
    """
    where = str(path)
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        raise InputError(f"cannot read program graph: {error.strerror}", where) from None
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as error:
        raise GraphBuildError(f"not a numpy npz archive: {error}", where) from None
    if "header" not in arrays:
        raise GraphBuildError(f"not an ncc program graph (no header; expected format {FORMAT!r})", where)
    try:
        header = json.loads(arrays["header"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GraphBuildError(f"corrupt header: {error}", where) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise GraphBuildError(f"not an ncc program graph (format {found!r}, expected {FORMAT!r})", where)
    _check_version(header.get("schema_version"), where)
    missing = [n for n in (*_NUMERIC, *(f"{t}_{p}" for t in _TEXT for p in ("data", "offsets")))
               if n not in arrays]
    if missing:
        raise GraphBuildError(f"archive lacks {', '.join(missing)}", where)
    columns: dict[str, Any] = {name: arrays[name] for name in _NUMERIC}
    for name in _TEXT:
        columns[name] = _split_text(arrays[f"{name}_data"], arrays[f"{name}_offsets"], name, where)
    try:
        names, module, metadata = header["function_names"], header["module_name"], header.get("metadata", {})
    except KeyError as error:
        raise GraphBuildError(f"header lacks {error.args[0]!r}", where) from None
    return _assemble(columns, names, module, metadata, where, validate)


# ----------------------------------------------------------------------------------------- by file suffix

def save(graph: ProgramGraph, path: str | os.PathLike) -> Path:
    """Write a program graph in the format its file suffix names, atomically.

    Args:
        graph: the program graph.
        path: ``*.json`` (:func:`save_json`), ``*.npz`` (:func:`save_npz`) or ``*.dot``/``*.gv``
            (:func:`~ncc.graph.convert_dot.to_dot`, which cannot be read back).

    Returns:
        The path written.

    Raises:
        InputError: the suffix names no format.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return save_json(graph, path)
    if suffix == ".npz":
        return save_npz(graph, path)
    if suffix in (".dot", ".gv"):
        text = to_dot(graph)
        return atomic_write(path, lambda stream: stream.write(text), "w")
    raise InputError(f"unknown program graph format {suffix!r}; use .json, .npz, .dot or .gv", str(path))


def load(path: str | os.PathLike, validate: bool = True) -> ProgramGraph:
    """Read a program graph written by :func:`save` (``*.json`` or ``*.npz``).

    Args:
        path: the file.
        validate: check the result with :meth:`ProgramGraph.validate`.

    Returns:
        The program graph.

    Raises:
        InputError: the file is missing or its suffix names no readable format.
        GraphBuildError: the file is not an ncc program graph of a readable version.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return load_json(path, validate)
    if suffix == ".npz":
        return load_npz(path, validate)
    raise InputError(f"cannot read program graphs from {suffix!r} files; use .json or .npz", str(path))
