"""Processed datasets as shards on disk: items as in memory, graphs stored once, the same training, caching."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from ncc.errors import DatasetError
from ncc.training import get_task, load_config, train
from ncc.training.datasets import Example, ExampleSource, ProgramGraphDataset
from ncc.training.shards import SHARD_FORMAT, ShardReader

from loops_helpers import loops_overrides, tiny_factory


@pytest.fixture(scope="module")
def graphs():
    """Program graphs of a few generated C programs, compiled by clang."""
    from ncc.frontend import compile
    from ncc.frontend.generator import generate_program
    from ncc.graph import build

    return [build(compile(generate_program(seed, seed % 2 == 1, 2, 4), language="c")) for seed in range(6)]


@pytest.fixture(scope="module")
def vocabulary(graphs):
    from ncc.embeddings.node_vocabulary import NodeVocabulary

    return NodeVocabulary().fit(graphs)


def _root_examples(graphs, roots=3):
    """Data-flow-like examples: ``roots`` per graph sharing its graph object, node labels, selector, mask."""
    examples = []
    for number, graph in enumerate(graphs):
        for root in range(roots):
            selector = np.zeros(graph.num_nodes, dtype=np.int64)
            selector[root * 7 % graph.num_nodes] = 1
            labels = (np.arange(graph.num_nodes) * (root + 1) % 3 == 0).astype(np.int64)
            examples.append(Example(graph, labels, name=f"g{number}@{root}", selector=selector,
                                    mask=np.arange(graph.num_nodes) % 2 == 0, info={"steps": root + number}))
    return examples


def _expected(example, encoder):
    """The item as the in-memory dataset held it: ``to_pyg`` of the example, then its info numbers."""
    from ncc.graph import to_pyg

    record = to_pyg(example.graph, encoder, y=example.y, aux=example.aux, selector=example.selector,
                    mask=example.mask, compact=True)
    for key, value in (example.info or {}).items():
        record[key] = torch.tensor([value])
    return record


def _assert_same_item(got, want):
    assert [key for key, _ in got.items()] == [key for key, _ in want.items()]
    for key, value in want.items():
        if isinstance(value, torch.Tensor):
            assert got[key].dtype == value.dtype and torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("kind", ["graph labels", "root examples"])
def test_items_read_back_exactly_and_shared_graphs_are_stored_once(graphs, vocabulary, tmp_path, kind):
    if kind == "graph labels":
        examples = [Example(g, i % 2, aux=[float(i), 2.5], name=str(i)) for i, g in enumerate(graphs)]
    else:
        examples = _root_examples(graphs)
    data = ProgramGraphDataset(tmp_path, ExampleSource(examples), vocabulary, name="x", shard_bytes=4096)
    assert data.reprocessed and len(data) == len(examples)
    assert data.manifest["graphs"] == len(graphs) and len(data.manifest["shards"]) > 1
    for index, example in enumerate(examples):
        _assert_same_item(data[index], _expected(example, vocabulary))
    np.testing.assert_array_equal(data.num_nodes_per_graph, [e.graph.num_nodes for e in examples])
    want_y = torch.cat([_expected(e, vocabulary).y for e in examples])
    assert torch.equal(data.labels, want_y) and torch.equal(data._data.y, want_y)
    if kind == "root examples":
        # A graph's arrays are written once for its three examples, which carry only their labels (int64),
        # selector (int8) and mask (bool): x int32, node_type int8, edge_index 2 x int32, flow int8, position int32.
        graph_bytes = sum(5 * g.num_nodes + 13 * g.num_edges for g in graphs)
        assert data.manifest["edges"] == sum(g.num_edges for g in graphs)
        assert data.manifest["bytes"] == graph_bytes + sum(10 * e.graph.num_nodes for e in examples)
        assert torch.equal(data.column("steps"), torch.tensor([float(e.info["steps"]) for e in examples]))
    subset = data[torch.tensor([4, 1])]
    _assert_same_item(subset[0], _expected(examples[4], vocabulary))
    np.testing.assert_array_equal(subset.num_nodes_per_graph, [examples[4].graph.num_nodes,
                                                               examples[1].graph.num_nodes])


def test_a_cache_of_the_single_file_format_converts_without_building_graphs(graphs, vocabulary, tmp_path):
    from torch_geometric.data import InMemoryDataset

    from ncc.training import datasets

    examples = _root_examples(graphs[:3], roots=2)
    source = ExampleSource(examples)
    # The format-2 file as ncc wrote it before shards: every record collated into one torch.save'd file.
    key = datasets._digest("ncc.ProgramGraphDataset", 2, datasets.SCHEMA_VERSION,
                           datasets.feature_digest(vocabulary), source.key)
    data, slices = InMemoryDataset.collate([_expected(e, vocabulary) for e in examples])
    (tmp_path / "processed").mkdir()
    torch.save((data.to_dict(), slices, data.__class__), tmp_path / "processed" / f"x-{key[:24]}.pt")

    class NoBuilding(ExampleSource):
        def examples(self):
            raise AssertionError("the conversion built examples")

    converted = ProgramGraphDataset(tmp_path, NoBuilding(examples), vocabulary, name="x")
    assert converted.reprocessed and converted.manifest["graphs"] == 3
    for index, example in enumerate(examples):
        _assert_same_item(converted[index], _expected(example, vocabulary))


def test_training_streams_the_same_batches_and_loss_curve_as_in_memory(loops_cache, tmp_path):
    from torch.utils.data import Dataset

    from ncc.training.datasets import GraphBatchSampler
    from ncc.training.trainer import _loader

    settings = {"model.name": "tiny", "model.hidden": 16, "optimizer.lr": 0.01, "data.batch_size": 16, "seed": 3,
                "epochs": 2, "model.dropout": 0.3}
    config = load_config(None, loops_overrides(loops_cache, tmp_path / "unused", **settings))
    task_data = get_task("loops").prepare(config, progress=False)
    sharded = task_data.splits["train"]
    assert isinstance(sharded, ProgramGraphDataset) and not sharded.reprocessed

    class InMemory(Dataset):
        """The split's items held as a list of ``Data``, as the in-memory dataset did."""

        def __init__(self, dataset):
            self.items = [_expected(e, dataset.encoder) for e in dataset.source.examples()]
            self.num_nodes_per_graph = np.asarray([item.num_nodes for item in self.items])

        def __len__(self):
            return len(self.items)

        def __getitem__(self, index):
            return self.items[index]

    seen = {}

    def recording(run):
        def factory(name, **kwargs):
            model = tiny_factory(name, **kwargs)
            model.register_forward_pre_hook(lambda _, inputs: seen.setdefault(run, []).append(hashlib.sha256(
                b"".join(bytes(inputs[0][k].numpy()) for k in ("x", "edge_index", "y", "batch"))).hexdigest()))
            return model
        return factory

    results = {}
    for run, splits in (("sharded", task_data.splits),
                        ("memory", {name: InMemory(split) for name, split in task_data.splits.items()})):
        run_config = load_config(None, loops_overrides(loops_cache, tmp_path / run, **settings))
        results[run] = train(run_config, model_factory=recording(run), task_data=replace(task_data, splits=splits))
    assert len(seen["sharded"]) > 20 and seen["sharded"] == seen["memory"]  # training and evaluation batches
    assert [h["train_loss"] for h in results["sharded"].history] == [h["train_loss"] for h in results["memory"].history]
    weights = [torch.load(results[run].best_checkpoint, weights_only=False)["model"] for run in ("sharded", "memory")]
    assert all(torch.equal(value, weights[1][key]) for key, value in weights[0].items())
    # DataLoader worker processes read the shards themselves and give the same batches.
    sampler = GraphBatchSampler(sharded.num_nodes_per_graph, batch_size=16, seed=3)
    alone, workers = ([b.x.sum().item() for b in _loader(sharded, sampler, n, torch.device("cpu"))] for n in (0, 2))
    assert list(alone) == list(workers)


def test_found_damaged_and_interrupted_folders(graphs, vocabulary, tmp_path):
    source = ExampleSource([(g, i % 2) for i, g in enumerate(graphs)])
    first = ProgramGraphDataset(tmp_path, source, vocabulary, name="x")
    again = ProgramGraphDataset(tmp_path, source, vocabulary, name="x")
    assert first.reprocessed and not again.reprocessed and again.path == first.path
    assert again.manifest["format"] == SHARD_FORMAT and again.manifest["source"] == source.key
    # A temporary folder of a process that is gone is removed by the next build of the same key.
    stale = tmp_path / "processed" / f".{first.path.name}.999999999.tmp"
    stale.mkdir()
    shard = first.path / "shard-00000.bin"
    shard.write_bytes(shard.read_bytes()[:-5])
    with pytest.raises(DatasetError, match="shard shard-00000.bin has .* bytes, the manifest says"):
        ShardReader(first.path)
    for path in first.path.iterdir():
        path.unlink()
    first.path.rmdir()
    rebuilt = ProgramGraphDataset(tmp_path, source, vocabulary, name="x")
    assert rebuilt.reprocessed and not stale.exists()
    assert [p.name for p in (tmp_path / "processed").iterdir()] == [first.path.name]


def test_an_example_unlike_the_first_is_a_one_line_error(graphs, vocabulary, tmp_path):
    examples = [Example(graphs[0], 1, name="first"), Example(graphs[1], 0, aux=[1.0], name="second")]
    with pytest.raises(DatasetError, match="second: .*first example") as error:
        ProgramGraphDataset(tmp_path, ExampleSource([examples[0], examples[1]]), vocabulary, name="x")
    assert "\n" not in str(error.value)
    assert not list((tmp_path / "processed").iterdir())  # nothing half-written left behind
