"""GGNN: ProGraML's gated graph network."""

from __future__ import annotations

import pytest
import torch

from ncc.models import GGNN, build_model


def test_steps_groups_share_weights(vocabulary):
    model = GGNN(vocab_size=len(vocabulary), steps="2,2,2,2")
    assert model.steps == (2, 2, 2, 2) and len(model.updates) == 4
    assert GGNN(vocab_size=len(vocabulary), steps=6).steps == (6,)
    assert len(GGNN(vocab_size=len(vocabulary), steps=[1, 3]).messages) == 2


def test_position_gating_depends_on_edge_position(make_batch, vocabulary):
    torch.manual_seed(0)
    model = GGNN(vocab_size=len(vocabulary), dropout=0.0).eval()
    batch = make_batch()
    with torch.no_grad():
        before = model(batch)
        changed = batch.clone()
        changed.edge_position = (changed.edge_position + 1) % 3
        after = model(changed)
    assert not torch.allclose(before, after)
    plain = GGNN(vocab_size=len(vocabulary), dropout=0.0, position_gating=False).eval()
    with torch.no_grad():
        assert torch.allclose(plain(batch), plain(changed))


def test_edge_direction_and_flow_matter(make_batch, vocabulary):
    torch.manual_seed(0)
    model = GGNN(vocab_size=len(vocabulary), dropout=0.0, readout="node").eval()
    batch = make_batch()
    with torch.no_grad():
        before = model(batch)
        flipped = batch.clone()
        flipped.edge_flow = (flipped.edge_flow + 1) % 3
        assert not torch.allclose(before, model(flipped))


def test_pretrained_embeddings_frozen_or_fine_tuned(make_batch, vocabulary):
    matrix = torch.randn(len(vocabulary), 16)
    batch = make_batch()
    frozen = GGNN(pretrained_embeddings=matrix, hidden_size=24)
    frozen(batch).sum().backward()
    assert frozen.embedding.table.weight.grad is None
    assert torch.equal(frozen.embedding.table.weight, matrix)
    tuned = GGNN(pretrained_embeddings=matrix.numpy(), freeze_embeddings=False)
    tuned(batch).sum().backward()
    assert tuned.embedding.table.weight.grad.abs().sum() > 0


def test_selector_embedding(make_batch, vocabulary):
    batch = make_batch(node_labels=True)
    model = GGNN(vocab_size=len(vocabulary), readout="node", selector=True)
    assert model.hidden_size == 32 + 2
    with pytest.raises(ValueError, match="selector"):
        model(batch)
    batch.selector = (torch.arange(batch.num_nodes) % 5 == 0).long()
    assert model(batch).shape == (batch.num_nodes, 2)


def test_mean_pooling_divides_the_summed_readout_by_each_graphs_nodes(make_batch, vocabulary, graphs):
    batch = make_batch()
    torch.manual_seed(0)
    summed = GGNN(vocab_size=len(vocabulary), num_classes=3).eval()
    torch.manual_seed(0)
    mean = GGNN(vocab_size=len(vocabulary), num_classes=3, pooling="mean").eval()
    sizes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.float32).unsqueeze(1)
    with torch.no_grad():
        assert torch.allclose(mean(batch) * sizes, summed(batch), rtol=1e-4, atol=1e-4)
        assert mean(batch).abs().max() < summed(batch).abs().max()


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": "2,x"}, "steps"),
    ({"steps": 0}, "steps"),
    ({"steps": []}, "steps"),
    ({"aggregation": "max"}, "aggregation"),
    ({"pooling": "max"}, "pooling"),
    ({"readout": "node", "aux_dim": 2}, "aux_dim"),
    ({"hidden_size": 0}, "hidden_size"),
    ({"max_position": -1}, "max_position"),
])
def test_ggnn_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model("ggnn", vocab_size=10, **kwargs)


def test_from_config_rejects_unknown_keys():
    model = GGNN.from_config({"vocab_size": 10, "steps": "1,1", "num_classes": 3})
    assert model.num_classes == 3
    with pytest.raises(ValueError, match="hidden_sise"):
        GGNN.from_config({"vocab_size": 10, "hidden_sise": 3})


def test_step_slack_draws_extra_training_steps_and_evaluation_runs_until_stable(make_batch, vocabulary):
    from torch_geometric.data import Batch

    batch = make_batch(node_labels=True)
    batch.selector = (torch.arange(batch.num_nodes) == 3).long()
    torch.manual_seed(0)
    model = GGNN(vocab_size=len(vocabulary), readout="node", selector=True, steps="2,3", step_slack=4,
                 max_eval_steps=40, dropout=0.0)
    drawn = set()
    for _ in range(40):
        model(batch)
        drawn.add(model.steps_run)
    assert drawn == set(range(5, 10))
    recalling = GGNN(vocab_size=len(vocabulary), readout="node", selector=True, steps=2, step_slack=30,
                     recall=True)
    recalling(batch).sum().backward()  # the steps without gradient cut no path from the output to the input
    assert recalling.embedding.table.weight.grad.abs().sum() > 0 and recalling.updates[0].input_size == 2 * 34
    model.eval()
    one = batch.to_data_list()[0]
    one.selector = (torch.arange(one.num_nodes) == 3).long()
    one = Batch.from_data_list([one])
    with torch.no_grad():
        logits = model(one)
    ran = model.steps_run
    assert 5 + model.stable_for <= ran <= 40
    fixed = GGNN(vocab_size=len(vocabulary), readout="node", selector=True, steps=f"2,{ran - 2}").eval()
    fixed.load_state_dict(model.state_dict())  # the extra steps are the last group's, with its weights
    with torch.no_grad():
        assert torch.allclose(fixed(one), logits, atol=1e-5)


def test_evaluation_stops_at_max_eval_steps_and_runs_trained_steps_without_it(make_batch, vocabulary):
    batch = make_batch(node_labels=True)
    batch.selector = (torch.arange(batch.num_nodes) == 3).long()
    model = GGNN(vocab_size=len(vocabulary), readout="node", selector=True, steps=3, max_eval_steps=4,
                 stable_for=50).eval()
    model(batch)
    assert model.steps_run == 4
    plain = GGNN(vocab_size=len(vocabulary), readout="node", selector=True, steps=3, step_slack=5).eval()
    plain(batch)
    assert plain.steps_run == 3


def test_evaluation_until_stable_gives_each_graph_the_answer_it_gets_alone(make_batch, vocabulary, graphs):
    from torch_geometric.data import Batch

    graphs = make_batch(node_labels=True).to_data_list()
    for graph in graphs:
        graph.selector = (torch.arange(graph.num_nodes) % 7 == 3).long()
    batch = Batch.from_data_list(graphs)
    torch.manual_seed(1)
    model = GGNN(vocab_size=len(vocabulary), readout="node", selector=True, steps=2, max_eval_steps=60,
                 stable_for=2).eval()
    with torch.no_grad():
        together = model(batch)
        alone = torch.cat([model(Batch.from_data_list([graph])) for graph in graphs])
    assert torch.allclose(together, alone, atol=1e-5)
