"""Every model learns whether a function has a loop, on held-out graphs, in a few seconds on CPU."""

from __future__ import annotations

import random

import pytest
import torch

from ncc.graph import to_pyg
from ncc.models import MODELS, build_model

OPS = ["+", "-", "*", "^", "&", "|"]


@pytest.fixture(scope="module")
def loop_task():
    from torch_geometric.data import Batch

    from ncc.embeddings.node_vocabulary import NodeVocabulary
    from ncc.frontend import compile
    from ncc.graph import build

    rng = random.Random(0)
    graphs = []
    for i in range(48):
        a, b = rng.choice(OPS), rng.choice(OPS)
        if i % 2:
            source = f"int f(int *p, int n) {{ int s = {i}; for (int i = 0; i < n; i++) s = s {a} p[i] {b} {i}; return s; }}"
        else:
            source = (f"int f(int *p, int n) {{ int s = {i}; s = s {a} p[0] {b} {i}; if (n > {i}) s = s {b} n; "
                      f"return s {a} p[1]; }}")
        graphs.append((build(compile(source + "\n", language="c")), i % 2))
    train, test = graphs[:32], graphs[32:]
    vocabulary = NodeVocabulary().fit(g for g, _ in train)
    data = [to_pyg(g, vocabulary, y=y) for g, y in train]
    return vocabulary, data, Batch.from_data_list([to_pyg(g, vocabulary, y=y) for g, y in test])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_learns_loop_presence(name, loop_task):
    from torch_geometric.data import Batch

    vocabulary, train, test = loop_task
    torch.manual_seed(0)
    model = build_model(name, vocab_size=len(vocabulary), **({"embedding_dim": 32} if name == "lstm" else {}))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    accuracy = 0.0
    for _ in range(40):
        model.train()
        for chunk in torch.randperm(len(train)).split(8):
            batch = Batch.from_data_list([train[int(i)] for i in chunk])
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(batch), batch.y).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(test).argmax(dim=1) == test.y).float().mean().item()
        if accuracy > 0.95:
            break
    assert accuracy > 0.95
