"""Round trips and layouts of the ProgramGraph conversions (networkx, JSON, npz, PyG, DOT)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

from ncc.errors import GraphBuildError, InputError, NccError
from ncc.graph import EDGE_FLOWS, NODE_TYPES, SCHEMA_VERSION, ProgramGraph
from ncc.graph.convert import (FORMAT, from_json, load, save, from_networkx, from_pyg, load_json, load_npz, save_json,
                               save_npz, to_dot, to_json, to_networkx, to_pyg)
from ncc.graph.convert_dot import dot_quote
from ncc.graph.convert_pyg import HETERO_EDGE_TYPES

I, V, C = "instruction", "variable", "constant"

# (type, text, full_text, function, block)
NODES = [
    (I, "[external]", "[external]", -1, -1),
    (I, "call", '%1 = call i32 @"hélper"(i32 5)', 0, 0),
    (I, "call", '%2 = call i32 (ptr, ...) @printf(ptr @.str, i32 %1, [4 x i8] c"%d\\0A\\00")', 0, 0),
    (I, "ret", "ret i32 0", 0, 1),
    (I, "add", "%y = add nsw i32 %x, 1", 1, 0),
    (I, "br", "br i1 true, label %exit, label %exit", 1, 0),
    (I, "ret", "ret i32 %y", 1, 1),
    (V, "i32", 'i32 %"naïve→π \\22q\\22"', 0, -1),
    (V, "i32", "i32 %x", 1, -1),
    (V, "i32", "i32 %y", 1, -1),
    (V, "ptr", "ptr @.str", -1, -1),
    (C, "i32", "i32 1", 1, -1),
    (C, "[4 x i8]", '[4 x i8] c"%d\\0A\\00"\n; a "second" line\twith a tab', -1, -1),
    (C, "i32", "i32 0", 0, -1),
]

# (source, target, flow, position), deliberately not sorted by source or flow.
EDGES = [
    (0, 1, "call", 0), (1, 2, "control", 0), (8, 4, "data", 0), (11, 4, "data", 1),
    (4, 9, "data", 0), (1, 4, "call", 0), (6, 1, "call", 0), (2, 3, "control", 0),
    (4, 5, "control", 0), (5, 6, "control", 0), (5, 6, "control", 1), (9, 6, "data", 0),
    (1, 7, "data", 0), (10, 2, "data", 0), (7, 2, "data", 1), (12, 2, "data", 2),
    (2, 0, "call", 0), (0, 2, "call", 0), (13, 3, "data", 0), (3, 0, "call", 0),
]

METADATA = {"source": "dir/ünïcode \"quoted\".c", "nested": {"opt": "-O1", "sizes": [1, 2, 3]}, "n": None}


def make_graph(nodes=NODES, edges=EDGES, function_names=("main", 'hélper "2"'), module_name="mod\\ule.ll",
               metadata=None) -> ProgramGraph:
    def strings(values):
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array

    return ProgramGraph(
        node_type=np.array([NODE_TYPES.index(n[0]) for n in nodes], dtype=np.int8),
        node_text=strings([n[1] for n in nodes]),
        node_full_text=strings([n[2] for n in nodes]),
        node_function=np.array([n[3] for n in nodes], dtype=np.int32),
        node_block=np.array([n[4] for n in nodes], dtype=np.int32),
        edge_index=np.array([[e[0] for e in edges], [e[1] for e in edges]], dtype=np.int32).reshape(2, -1),
        edge_flow=np.array([EDGE_FLOWS.index(e[2]) for e in edges], dtype=np.int8),
        edge_position=np.array([e[3] for e in edges], dtype=np.int32),
        function_names=tuple(function_names),
        module_name=module_name,
        metadata=dict(METADATA) if metadata is None else metadata,
    )


@pytest.fixture
def graph() -> ProgramGraph:
    return make_graph().validate()


@pytest.fixture
def external_only() -> ProgramGraph:
    return make_graph(nodes=NODES[:1], edges=[], function_names=(), module_name="empty", metadata={}).validate()


def assert_same(a: ProgramGraph, b: ProgramGraph) -> None:
    assert a.equals(b)
    assert b.equals(a)
    assert a.metadata == b.metadata
    assert type(a.function_names) is tuple and type(b.function_names) is tuple
    for name in ("node_text", "node_full_text"):
        assert all(type(t) is str for t in getattr(b, name))


def test_fixture_is_a_valid_graph_covering_the_schema(graph):
    assert graph.num_nodes == len(NODES) and graph.num_edges == len(EDGES)
    assert set(graph.node_type.tolist()) == {0, 1, 2}
    assert set(graph.edge_flow.tolist()) == {0, 1, 2}
    assert graph.edge_position.max() > 0


# ---------------------------------------------------------------------------------------------- networkx

def test_networkx_round_trip(graph):
    g = to_networkx(graph)
    assert isinstance(g, nx.MultiDiGraph)
    assert g.number_of_nodes() == graph.num_nodes and g.number_of_edges() == graph.num_edges
    assert g.nodes[7] == {"type": "variable", "text": "i32", "full_text": NODES[7][2], "function": 0,
                          "block": -1}
    assert g.graph["function_names"] == list(graph.function_names)
    assert g.graph["module_name"] == graph.module_name
    assert g.graph["schema_version"] == SCHEMA_VERSION
    assert g.graph["metadata"] == METADATA and g.graph["metadata"] is not graph.metadata
    # Parallel edges survive, keyed by their index in the edge list.
    assert {k: d for k, d in g[5][6].items()} == {9: {"flow": "control", "position": 0},
                                                  10: {"flow": "control", "position": 1}}
    assert_same(graph, from_networkx(g))


def test_networkx_edge_order_comes_from_keys_not_iteration_order(graph):
    g = to_networkx(graph)
    shuffled = nx.MultiDiGraph(**g.graph)
    shuffled.add_nodes_from(reversed(list(g.nodes(data=True))))
    shuffled.add_edges_from(reversed(list(g.edges(keys=True, data=True))))
    assert_same(graph, from_networkx(shuffled))


def test_networkx_round_trip_external_only(external_only):
    assert_same(external_only, from_networkx(to_networkx(external_only)))


def test_networkx_rejects_unknown_names_and_newer_versions(graph):
    g = to_networkx(graph)
    g.nodes[3]["type"] = "basic_block"
    with pytest.raises(GraphBuildError, match="basic_block"):
        from_networkx(g)
    g = to_networkx(graph)
    g.edges[1, 2, 1]["flow"] = "alias"
    with pytest.raises(GraphBuildError, match="alias"):
        from_networkx(g)
    g = to_networkx(graph)
    g.graph["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(GraphBuildError, match="newer"):
        from_networkx(g)
    g = to_networkx(graph)
    g.add_node(99, type="variable", text="i8")  # an orphan
    with pytest.raises(GraphBuildError, match="without edges"):
        from_networkx(g)


def test_networkx_with_other_node_ids_and_a_digraph():
    g = nx.DiGraph(module_name="hand", function_names=["f"])
    g.add_node("ext", type="instruction", text="[external]")
    g.add_node("ret", type="instruction", text="ret", full_text="ret void", function=0, block=0)
    g.add_edge("ext", "ret", flow="call")
    g.add_edge("ret", "ext", flow="call")
    graph = from_networkx(g)
    assert graph.node_full_text.tolist() == ["[external]", "ret void"]
    assert graph.edge_index.tolist() == [[0, 1], [1, 0]] and graph.edge_position.tolist() == [0, 0]
    assert graph.function_names == ("f",) and graph.module_name == "hand"


# -------------------------------------------------------------------------------------------------- JSON

def test_json_round_trip_through_text(graph):
    data = to_json(graph)
    assert data["format"] == FORMAT == "ncc.program_graph"
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["nodes"]["type"] == graph.node_type.tolist()
    assert data["edges"]["source"][:3] == [0, 1, 8]
    assert all(isinstance(column, list) for column in (*data["nodes"].values(), *data["edges"].values()))
    assert_same(graph, from_json(json.loads(json.dumps(data))))


def test_json_round_trip_external_only(external_only):
    assert_same(external_only, from_json(json.loads(json.dumps(to_json(external_only)))))


def test_save_and_load_json(graph, tmp_path):
    path = save_json(graph, tmp_path / "sub" / "g.json")
    assert path == tmp_path / "sub" / "g.json"
    assert os.listdir(path.parent) == ["g.json"]  # no temporary file left behind
    text = path.read_text(encoding="utf-8")
    assert "\n" not in text and "naïve" in text  # compact, unicode kept as is
    assert_same(graph, load_json(path))
    assert_same(graph, load_json(save_json(graph, tmp_path / "pretty.json", indent=2)))
    save_json(make_graph(module_name="second"), path)  # replaces atomically
    assert load_json(str(path)).module_name == "second"


def test_json_rejects_foreign_files_naming_them(graph, tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"format": "programl", "nodes": []}))
    with pytest.raises(GraphBuildError, match="not an ncc program graph") as error:
        load_json(path)
    assert error.value.path == str(path) and str(path) in str(error.value)

    data = to_json(graph)
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(GraphBuildError, match=f"version {SCHEMA_VERSION + 1} is newer") as error:
        load_json(path)
    assert str(path) in str(error.value)

    path.write_text('{"format": "ncc.program_graph", ')
    with pytest.raises(GraphBuildError, match="not valid JSON"):
        load_json(path)

    data = to_json(graph)
    del data["edges"]["position"]
    with pytest.raises(GraphBuildError, match="position"):
        from_json(data, "x.json")

    data = to_json(graph)
    data["edges"]["target"][0] = 1000
    with pytest.raises(GraphBuildError, match="out of range") as error:
        from_json(data, "x.json")
    assert error.value.path == "x.json"

    with pytest.raises(InputError, match="cannot read"):
        load_json(tmp_path / "missing.json")


def test_json_refuses_metadata_it_cannot_write(tmp_path):
    with pytest.raises(GraphBuildError, match="JSON"):
        save_json(make_graph(metadata={"bad": object()}), tmp_path / "g.json")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------------- npz

def test_npz_round_trip(graph, tmp_path):
    path = save_npz(graph, tmp_path / "graph.cache")  # no .npz appended
    assert path == tmp_path / "graph.cache" and os.listdir(tmp_path) == ["graph.cache"]
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[name].dtype != object for name in archive.files)
        assert archive["edge_index"].dtype == np.int32 and archive["node_type"].dtype == np.int8
    assert_same(graph, load_npz(path))


def test_npz_round_trip_external_only(external_only, tmp_path):
    assert_same(external_only, load_npz(save_npz(external_only, tmp_path / "e.npz")))


def test_npz_rejects_foreign_and_newer_files(graph, tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez_compressed(foreign, x=np.arange(3))
    with pytest.raises(GraphBuildError, match="not an ncc program graph") as error:
        load_npz(foreign)
    assert str(foreign) in str(error.value)

    path = save_npz(graph, tmp_path / "g.npz")
    with np.load(path) as archive:
        arrays = dict(archive)
    header = json.loads(arrays["header"].tobytes())
    header["schema_version"] = SCHEMA_VERSION + 1
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    newer = tmp_path / "newer.npz"
    np.savez_compressed(newer, **arrays)
    with pytest.raises(GraphBuildError, match="newer"):
        load_npz(newer)

    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(GraphBuildError, match="npz"):
        load_npz(text)
    with pytest.raises(NccError):
        load_npz(tmp_path / "missing.npz")


@pytest.mark.parametrize("suffix", [".json", ".npz", ".JSON"])
def test_save_and_load_by_suffix(graph, tmp_path, suffix):
    assert_same(graph, load(save(graph, tmp_path / f"g{suffix}")))


def test_save_dot_and_unknown_suffixes(graph, tmp_path):
    assert save(graph, tmp_path / "g.dot").read_text(encoding="utf-8") == to_dot(graph)
    with pytest.raises(InputError, match="unknown program graph format"):
        save(graph, tmp_path / "g.pkl")
    with pytest.raises(InputError, match="cannot read"):
        load(tmp_path / "g.dot")


# ---------------------------------------------------------------------------------------------------- PyG

def test_pyg_homogeneous(graph):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    data = to_pyg(graph)
    n, e = graph.num_nodes, graph.num_edges
    assert data.num_nodes == n
    assert data.edge_index.dtype == torch.long and tuple(data.edge_index.shape) == (2, e)
    for name, size in (("node_type", n), ("node_function", n), ("node_block", n), ("edge_flow", e),
                       ("edge_type", e), ("edge_position", e)):
        tensor = getattr(data, name)
        assert tensor.dtype == torch.long and tuple(tensor.shape) == (size,), name
    assert data.edge_index.tolist() == graph.edge_index.tolist()
    assert data.edge_type.tolist() == data.edge_flow.tolist() == graph.edge_flow.tolist()
    assert data.edge_position.tolist() == graph.edge_position.tolist()
    assert data.text == list(graph.node_text) and data.full_text == list(graph.node_full_text)
    data.validate(raise_on_error=True)
    back = from_pyg(data)
    assert back.equals(graph)


def test_pyg_batches(graph, external_only):
    pytest.importorskip("torch_geometric")
    from torch_geometric.data import Batch

    batch = Batch.from_data_list([to_pyg(graph), to_pyg(external_only), to_pyg(graph)])
    assert batch.num_nodes == 2 * graph.num_nodes + 1
    assert batch.edge_index.shape[1] == 2 * graph.num_edges
    assert batch.edge_index[:, graph.num_edges:].min().item() == graph.num_nodes + 1
    hetero = Batch.from_data_list([to_pyg(graph, hetero=True), to_pyg(external_only, hetero=True)])
    assert hetero["instruction"].num_nodes == int(np.count_nonzero(graph.node_type == 0)) + 1


@pytest.mark.parametrize("name", ["graph", "external_only"])
def test_pyg_hetero_maps_back_to_the_graph(name, request):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    graph = request.getfixturevalue(name)
    data = to_pyg(graph, hetero=True)
    assert set(data.node_types) == set(NODE_TYPES)
    assert set(data.edge_types) == set(HETERO_EDGE_TYPES)
    for code, node_type in enumerate(NODE_TYPES):
        ids = np.flatnonzero(graph.node_type == code)
        store = data[node_type]
        assert store.num_nodes == ids.size
        assert store.node_id.dtype == torch.long and store.node_id.tolist() == ids.tolist()
        assert store.text == [graph.node_text[i] for i in ids]
        assert store.full_text == [graph.node_full_text[i] for i in ids]
    if graph.num_nodes > 1:
        assert data["instruction"].text[0] == "[external]"

    per_flow: dict[str, list] = {flow: [] for flow in EDGE_FLOWS}
    total = 0
    for relation in HETERO_EDGE_TYPES:
        source, flow, target = relation
        store = data[relation]
        local = store.edge_index
        assert local.dtype == torch.long and local.shape[0] == 2
        assert store.edge_position.shape == store.edge_id.shape == (local.shape[1],)
        if local.numel():
            assert local[0].max() < data[source].num_nodes and local[1].max() < data[target].num_nodes
        global_source = data[source].node_id[local[0]].tolist()
        global_target = data[target].node_id[local[1]].tolist()
        per_flow[flow] += zip(store.edge_id.tolist(), global_source, global_target,
                              store.edge_position.tolist())
        total += local.shape[1]
    assert total == graph.num_edges
    for flow in EDGE_FLOWS:
        edges = sorted(per_flow[flow])
        expected = graph.edges(flow)
        assert [(s, t) for _, s, t, _ in edges] == list(zip(*expected.tolist())) if expected.size else not edges
        ids = np.flatnonzero(graph.edge_flow == EDGE_FLOWS.index(flow))
        assert [e for e, _, _, _ in edges] == ids.tolist()
        assert [p for _, _, _, p in edges] == graph.edge_position[ids].tolist()


def test_pyg_hetero_edge_kinds(graph):
    pytest.importorskip("torch_geometric")
    data = to_pyg(graph, hetero=True)
    data.validate(raise_on_error=True)
    assert data.metadata() == (list(NODE_TYPES), list(HETERO_EDGE_TYPES))
    counts = {relation: data[relation].edge_index.shape[1] for relation in HETERO_EDGE_TYPES}
    assert counts == {(I, "control", I): 5, (I, "call", I): 6, (I, "data", V): 2, (V, "data", I): 4,
                      (C, "data", I): 3}


def test_no_torch_at_import():
    code = ("import sys, ncc.graph.convert, ncc.graph.convert_pyg, ncc.graph.convert_dot; "
            "assert 'torch' not in sys.modules and 'torch_geometric' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------------- DOT

def _outside_strings(dot: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', dot)


def test_dot_quote():
    assert dot_quote('c"%d\\0A\\00"') == '"c\\"%d\\\\0A\\\\00\\""'
    assert dot_quote("a\nb\r\nc") == '"a\\nb\\nc"'
    assert dot_quote("t\tx\x00") == '"t\\\\x09x\\\\x00"'
    assert dot_quote("naïve→π") == '"naïve→π"'


def test_dot_structure(graph):
    dot = to_dot(graph)
    bare = _outside_strings(dot)
    assert bare.startswith("digraph ") and bare.rstrip().endswith("}")
    assert bare.count("{") == bare.count("}")
    depth = 0
    for char in bare:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert bare.count('"') % 2 == 0
    assert re.findall(r"subgraph (cluster_\d+)", bare) == ["cluster_0", "cluster_1"]
    assert 'label="main";' in dot and 'label="hélper \\"2\\"";' in dot
    declared = re.findall(r"^\s*(n\d+) \[", bare, flags=re.M)
    assert sorted(declared) == sorted(f"n{i}" for i in range(graph.num_nodes))
    edges = re.findall(r"^\s*(n\d+) -> (n\d+) \[(.*)\];$", dot, flags=re.M)
    assert [(s, t) for s, t, _ in edges] == [(f"n{s}", f"n{t}") for s, t, _, _ in EDGES]
    for (_, _, attributes), (_, _, flow, position) in zip(edges, EDGES):
        labelled = f'label="{position}"' in attributes
        assert labelled == (position > 0 or flow == "data")
        assert ("dashed" in attributes) == (flow == "call")
    # Nodes of a function are declared inside its cluster.
    clusters = re.findall(r"subgraph cluster_(\d+) \{(.*?)\n  \}", _outside_strings(dot), flags=re.S)
    for index, body in clusters:
        ids = [int(i) for i in re.findall(r"n(\d+) \[", body)]
        assert ids == np.flatnonzero(graph.node_function == int(index)).tolist()
    # Instruction boxes, variable ellipses, constant octagons; escaped text and tooltips.
    assert re.search(r'n4 \[label="add", tooltip="%y = add nsw i32 %x, 1", shape=box', dot)
    assert re.search(r"n8 \[[^\n]*shape=ellipse", dot) and re.search(r"n11 \[[^\n]*shape=octagon", dot)
    assert 'tooltip="[4 x i8] c\\"%d\\\\0A\\\\00\\"\\n; a \\"second\\" line\\\\x09with a tab"' in dot
    assert "\t" not in dot
    assert to_dot(graph, label="full_text").count("label=\"%y = add nsw i32 %x, 1\"") == 1
    with pytest.raises(ValueError):
        to_dot(graph, label="opcode")


def test_dot_external_only(external_only):
    dot = to_dot(external_only)
    assert "cluster" not in dot and "n0 [" in dot and "->" not in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
@pytest.mark.parametrize("label", ["text", "full_text"])
def test_dot_renders_with_graphviz(graph, label):
    result = subprocess.run(["dot", "-Tsvg"], input=to_dot(graph, label=label).encode("utf-8"),
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert not result.stderr.strip(), result.stderr.decode()
    svg = result.stdout.decode("utf-8")
    assert svg.count('class="cluster"') == 2 and svg.count('class="node"') == graph.num_nodes
    assert svg.count('class="edge"') == graph.num_edges
    assert "hélper &quot;2&quot;" in svg
    assert "c&quot;%d\\0A\\00&quot;" in svg  # backslashes shown as written


# --------------------------------------------------------------------------------------- built graphs

TINY_IR = "define i32 @f(i32 %a) {\n  %b = add i32 %a, 1\n  ret i32 %b\n}\n"

TWO_FUNCTIONS_IR = r"""@.str = private unnamed_addr constant [4 x i8] c"%d\0A\00", align 1

define i32 @helper(i32 %x) {
entry:
  %c = icmp sgt i32 %x, 0
  br i1 %c, label %pos, label %neg
pos:
  %y = add nsw i32 %x, 1
  ret i32 %y
neg:
  ret i32 0
}

define i32 @main() {
  %1 = call i32 @helper(i32 5)
  %2 = call i32 (ptr, ...) @printf(ptr @.str, i32 %1)
  ret i32 0
}

declare i32 @printf(ptr, ...)
"""


@pytest.mark.parametrize("ir", [TINY_IR, TWO_FUNCTIONS_IR], ids=["tiny", "two_functions"])
def test_built_graphs_round_trip(ir, tmp_path):
    from ncc.graph.builder import build

    graph = build(ir, "built")
    assert_same(graph, from_networkx(to_networkx(graph)))
    assert_same(graph, from_json(json.loads(json.dumps(to_json(graph)))))
    assert_same(graph, load_json(save_json(graph, tmp_path / "g.json")))
    assert_same(graph, load_npz(save_npz(graph, tmp_path / "g.npz")))
    dot = to_dot(graph)
    assert len(re.findall(r"subgraph cluster_\d+", dot)) == len(graph.function_names)
    assert len(re.findall(r"^\s*n\d+ -> n\d+ ", dot, flags=re.M)) == graph.num_edges
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg"], input=dot.encode("utf-8"), capture_output=True, check=True, timeout=60)
    if ir is TWO_FUNCTIONS_IR:
        assert graph.function_names == ("@helper", "@main")
        assert graph.edge_position.max() > 0 and set(graph.edge_flow.tolist()) == {0, 1, 2}


def test_built_graph_to_pyg(tmp_path):
    pytest.importorskip("torch_geometric")
    from ncc.graph.builder import build

    graph = build(TWO_FUNCTIONS_IR, "built")
    assert from_pyg(to_pyg(graph)).equals(graph)
    data = to_pyg(graph, hetero=True)
    edges = []
    for relation in HETERO_EDGE_TYPES:
        source, flow, target = relation
        local = data[relation].edge_index
        edges += zip(data[relation].edge_id.tolist(), data[source].node_id[local[0]].tolist(),
                     data[target].node_id[local[1]].tolist(), [flow] * local.shape[1])
    edges.sort()
    assert [e for e, _, _, _ in edges] == list(range(graph.num_edges))
    assert [(s, t) for _, s, t, _ in edges] == list(zip(*graph.edge_index.tolist()))
    assert [EDGE_FLOWS.index(f) for _, _, _, f in edges] == graph.edge_flow.tolist()
