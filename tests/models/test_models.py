"""Every model of the registry: forward and backward on real graphs, shapes, gradients, determinism."""

from __future__ import annotations

import pytest
import torch

from ncc.models import MODELS, build_model

GRAPH_ONLY = {"lstm"}  # sequence models read a graph's statements and give one answer per graph


def _model(name, vocabulary, **kwargs):
    return build_model(name, vocab_size=len(vocabulary), **kwargs)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("aux_dim", [0, 2])
def test_graph_readout_forward_backward(name, aux_dim, make_batch, vocabulary, graphs):
    torch.manual_seed(0)
    model = _model(name, vocabulary, num_classes=3, aux_dim=aux_dim)
    batch = make_batch(aux_dim=aux_dim)
    logits = model(batch)
    assert logits.shape == (len(graphs), 3)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, batch.y).backward()
    gradient = model.embedding.table.weight.grad
    assert gradient is not None and gradient.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", sorted(set(MODELS) - GRAPH_ONLY))
def test_node_readout_forward_backward(name, make_batch, vocabulary):
    torch.manual_seed(0)
    model = _model(name, vocabulary, num_classes=2, readout="node")
    batch = make_batch(node_labels=True)
    logits = model(batch)
    assert logits.shape == (batch.num_nodes, 2)
    torch.nn.functional.cross_entropy(logits, batch.y).backward()
    assert model.embedding.table.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(GRAPH_ONLY & set(MODELS)))
def test_graph_only_models_reject_node_readout(name, vocabulary):
    with pytest.raises(ValueError, match="readout"):
        _model(name, vocabulary, readout="node")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_deterministic_on_cpu(name, make_batch, vocabulary):
    def run():
        torch.manual_seed(1234)
        model = _model(name, vocabulary, aux_dim=2)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        batch = make_batch(aux_dim=2)
        losses = []
        for _ in range(3):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(batch), batch.y)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        return losses, [p.detach().clone() for p in model.parameters()]

    (losses_a, params_a), (losses_b, params_b) = run(), run()
    assert losses_a == losses_b
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_eval_mode_single_graph(name, make_batch, vocabulary, graphs):
    """A graph's answer does not depend on the other graphs of its batch (padding, pooling, batch norm)."""
    model = _model(name, vocabulary).eval()
    batch = make_batch()
    with torch.no_grad():
        together = model(batch)
        for index in range(len(graphs)):
            example = batch.get_example(index)
            alone = model(example.__class__.from_dict(example.to_dict()))
            assert alone.shape == (1, 2)
            assert torch.allclose(together[index:index + 1], alone, atol=1e-4), index  # float rounding: batch sizes pick other kernels


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 0}, "num_classes"),
    ({"readout": "edge"}, "readout"),
    ({"aux_dim": -1}, "aux_dim"),
    ({"dropout": 1.5}, "dropout"),
    ({"vocab_size": None}, "vocab_size"),
])
def test_argument_errors(name, kwargs, message):
    arguments = {"vocab_size": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_model(name, **arguments)


def test_unknown_model_and_argument():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("transformer9000")
    with pytest.raises(ValueError, match="colour"):
        build_model("ggnn", vocab_size=4, colour="red")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_missing_aux_and_bad_ids(name, make_batch, vocabulary):
    model = _model(name, vocabulary, aux_dim=2)
    with pytest.raises(ValueError, match="aux"):
        model(make_batch())
    batch = make_batch(aux_dim=2)
    batch.x = batch.x + len(vocabulary)
    with pytest.raises(ValueError, match="feature ids"):
        model(batch)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mixed_precision_forward_backward(name, make_batch, vocabulary, graphs):
    torch.manual_seed(0)
    model = _model(name, vocabulary, aux_dim=2)
    batch = make_batch(aux_dim=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(batch)
    assert logits.shape == (len(graphs), 2) and torch.isfinite(logits.float()).all()
    torch.nn.functional.cross_entropy(logits.float(), batch.y).backward()
    assert model.embedding.table.weight.grad.abs().sum() > 0


def test_the_node_mlp_reads_node_text_and_the_root_but_no_edges(make_batch, vocabulary):
    batch = make_batch(node_labels=True)
    batch.selector = (torch.arange(batch.num_nodes) == 3).long()
    model = build_model("mlp", vocab_size=len(vocabulary), readout="node", selector=True).eval()
    with torch.no_grad():
        logits = model(batch)
        rewired = batch.clone()
        rewired.edge_index = rewired.edge_index.flip(0)[:, : rewired.edge_index.shape[1] // 2]
        rewired.edge_flow = rewired.edge_flow[: rewired.edge_index.shape[1]]
        rewired.edge_position = rewired.edge_position[: rewired.edge_index.shape[1]]
        assert torch.equal(model(rewired), logits)
        moved = batch.clone()
        moved.selector = (torch.arange(batch.num_nodes) == 4).long()
        changed = (model(moved) != logits).any(dim=1)
        assert changed[[3, 4]].all() and not changed[5:].any()
