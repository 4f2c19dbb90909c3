"""Real program graphs from tiny C programs, compiled once per session, and their batches."""

from __future__ import annotations

import pytest

PROGRAMS = [
    "int f(int *a, int n) { int s = 0; for (int i = 0; i < n; i++) s += a[i] * 3; return s; }",
    "int g(int x, int y) { return x * y + 7; }",
    "double h(double a, double b) { double c = a / b; return c / (a + 1.5); }",
    "int w(int x) { int c = 0; while (x > 0) { c += x & 1; x >>= 1; } return c; }",
    "int k(int x) { switch (x) { case 0: return 4; case 1: return 9; case 5: return 2; default: return x; } }",
    "static int sq(int x) { return x * x; }\nint m(int a, int b) { return sq(a) + sq(b) > 10 ? sq(a) : b; }",
]


@pytest.fixture(scope="session")
def graphs():
    """The ProgramGraphs of :data:`PROGRAMS`."""
    from ncc.frontend import compile
    from ncc.graph import build

    return [build(compile(source + "\n", language="c", name=f"p{i}")) for i, source in enumerate(PROGRAMS)]


@pytest.fixture(scope="session")
def vocabulary(graphs):
    """A NodeVocabulary fitted on all but the last graph."""
    from ncc.embeddings.node_vocabulary import NodeVocabulary

    return NodeVocabulary().fit(graphs[:-1])


@pytest.fixture()
def make_batch(graphs, vocabulary):
    """``make_batch(aux_dim=0, node_labels=False)``: a Batch of all graphs with vocabulary features."""
    from torch_geometric.data import Batch

    from ncc.graph import to_pyg

    def make(aux_dim: int = 0, node_labels: bool = False):
        data = []
        for i, graph in enumerate(graphs):
            y = (graph.node_type == 0).astype("int64") if node_labels else i % 2
            aux = [float(i + j) for j in range(aux_dim)] if aux_dim else None
            data.append(to_pyg(graph, vocabulary, y=y, aux=aux, compact=True))
        return Batch.from_data_list(data)

    return make


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: these graphs are tiny, and thread hand-offs stall on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
