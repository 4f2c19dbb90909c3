"""Processed dataset cache, batch samplers and the loops task's data."""

from __future__ import annotations

import numpy as np
import pytest

from ncc.training import get_task, load_config
from ncc.training.datasets import ExampleSource, GraphBatchSampler, ProgramGraphDataset, split_indices
from ncc.frontend.generator import generate_program
from ncc.graph.analysis import has_loop
from ncc.tasks.loops import LoopsOptions
from ncc.training.generated import generate_programs

from loops_helpers import LOOPS_OPTIONS, loops_overrides


def _splits(cache, **more):
    config = load_config(None, loops_overrides(cache, cache / "unused", **more))
    return get_task("loops").prepare(config, progress=False)


def test_loops_data_is_balanced_labelled_by_control_flow_and_cached(loops_cache):
    data = _splits(loops_cache)
    sizes = {split: len(d) for split, d in data.splits.items()}
    assert sizes == {"train": 280, "val": 60, "test": 60}
    assert not any(d.reprocessed for d in data.splits.values())  # the fixture built them: found, not rebuilt
    labels = np.concatenate([d.labels.numpy() for d in data.splits.values()])
    assert labels.sum() == 200  # half the programs loop
    assert 5 < len(data.encoder) < 40
    assert data.splits["train"].num_nodes_per_graph.min() > 5


def test_processed_cache_is_keyed_by_features_and_source(loops_cache, tmp_path):
    from ncc.embeddings.node_vocabulary import NodeVocabulary
    from ncc.frontend import compile
    from ncc.graph import build

    graphs = [build(compile(generate_program(seed, seed % 2 == 1), language="c")) for seed in range(6)]
    labels = [int(has_loop(g)) for g in graphs]
    assert labels == [0, 1, 0, 1, 0, 1]
    vocabulary = NodeVocabulary().fit(graphs[:4])
    source = ExampleSource(zip(graphs, labels))
    first = ProgramGraphDataset(tmp_path, source, vocabulary, name="x")
    again = ProgramGraphDataset(tmp_path, ExampleSource(zip(graphs, labels)), vocabulary, name="x")
    assert first.reprocessed and not again.reprocessed and again.path == first.path
    assert len(again) == 6 and again[1].y.item() == 1 and again[1].x.shape[0] == graphs[1].num_nodes
    other_labels = ProgramGraphDataset(tmp_path, ExampleSource(zip(graphs, [1 - y for y in labels])), vocabulary,
                                       name="x")
    other_features = ProgramGraphDataset(tmp_path, source, NodeVocabulary(min_count=2).fit(graphs[:4]), name="x")
    assert other_labels.reprocessed and other_features.reprocessed
    assert len({first.path, other_labels.path, other_features.path}) == 3
    # Only whole files: no temporary left behind.
    assert not list((tmp_path / "processed").glob(".*tmp"))


def test_killed_processing_leaves_no_cache(tmp_path):
    from ncc.embeddings.node_vocabulary import NodeVocabulary
    from ncc.frontend import compile
    from ncc.graph import build

    graph = build(compile(generate_program(1, True), language="c"))

    class Exploding(ExampleSource):
        def examples(self):
            yield from super().examples()
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ProgramGraphDataset(tmp_path, Exploding([(graph, 1)]), NodeVocabulary().fit([graph]))
    assert not (tmp_path / "processed").exists() or not list((tmp_path / "processed").iterdir())


def test_changing_a_task_option_reprocesses(loops_cache):
    data = _splits(loops_cache, **{"task.seed": 1, "task.programs": 20})
    assert all(d.reprocessed for d in data.splits.values())
    assert sum(len(d) for d in data.splits.values()) == 20


@pytest.mark.parametrize("budget", [150, 400, 1000])
def test_node_budget_batches_respect_the_budget(budget):
    sizes = np.random.default_rng(0).integers(10, 200, size=300)
    sizes[7] = 2000  # larger than any budget: a batch of its own
    sampler = GraphBatchSampler(sizes, node_budget=budget, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(300))
    for batch in batches:
        assert sizes[batch].sum() <= budget or len(batch) == 1
    sampler.set_epoch(1)
    assert list(sampler) != batches  # reshuffled per epoch, reproducibly
    twin = GraphBatchSampler(sizes, node_budget=budget, seed=3)
    twin.set_epoch(1)
    assert list(twin) == list(sampler)


def test_bucketed_batches_hold_graphs_of_similar_size():
    sizes = np.random.default_rng(2).integers(10, 600, size=5000)
    plain, bucketed = (GraphBatchSampler(sizes, batch_size=32, seed=1, bucket=b) for b in (False, True))

    def spread(sampler):
        return np.median([sizes[b].max() - sizes[b].min() for b in sampler])

    assert spread(bucketed) < spread(plain) / 10
    batches = list(bucketed)
    assert sorted(i for b in batches for i in b) == list(range(5000))
    assert len(batches) == len(list(plain))
    bucketed.set_epoch(1)
    assert list(bucketed) != batches
    first_sizes = [int(sizes[b].min()) for b in batches[:20]]
    assert first_sizes != sorted(first_sizes)  # the batches themselves come in random order
    evaluation = [i for b in GraphBatchSampler(sizes, batch_size=32, shuffle=False, bucket=True) for i in b]
    assert sorted(evaluation) == list(range(5000)) and np.all(np.diff(sizes[evaluation]) >= 0)


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_no_rank_trains_on_a_single_graph(replicas):
    for graphs in range(2 * replicas, 70):
        ranks = [GraphBatchSampler([10] * graphs, batch_size=4, num_replicas=replicas, rank=r) for r in range(replicas)]
        shards = [list(sampler) for sampler in ranks]
        assert all(len(batch) >= 2 for shard in shards for batch in shard), graphs
        assert sorted(i for shard in shards for batch in shard for i in batch) == list(range(graphs))


def test_sharded_steps_union_to_the_single_process_batches():
    sizes = np.random.default_rng(1).integers(5, 50, size=101)
    for kind in ({"batch_size": 8}, {"node_budget": 200}, {"batch_size": 4, "bucket": True}):
        ranks = [GraphBatchSampler(sizes, num_replicas=3, rank=r, seed=5, **kind) for r in range(3)]
        for sampler in ranks:
            sampler.set_epoch(2)
        shards = [list(s) for s in ranks]
        assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
        seen = [i for shard in shards for batch in shard for i in batch]
        assert len(seen) == len(set(seen)) and len(seen) >= 101 - 2
        if "batch_size" in kind:
            assert len(seen) == 101
        if "batch_size" in kind:  # a step's union is one process's batch of 3 x 8
            single = GraphBatchSampler(sizes, batch_size=3 * kind["batch_size"], seed=5,
                                       bucket=kind.get("bucket", False))
            single.set_epoch(2)
            unions = [sorted(i for shard in shards for i in shard[step]) for step in range(len(shards[0]))]
            batches = [sorted(b) for b in single]
            if len(unions) < len(batches):  # the last step would have left a rank one graph: folded
                batches[-2:] = [sorted(batches[-2] + batches[-1])]
            assert unions == batches
            assert min(len(batch) for shard in shards for batch in shard) >= 2
    evaluation = [GraphBatchSampler(sizes, batch_size=10, shuffle=False, num_replicas=2, rank=r, even=False)
                  for r in range(2)]
    assert sorted(i for s in evaluation for b in s for i in b) == list(range(101))


def test_generator_is_seeded_and_split_is_a_partition():
    options = LoopsOptions(programs=20, seed=4)
    assert generate_programs(options, "loops") == generate_programs(options, "loops")
    assert generate_programs(options, "loops") != generate_programs(LoopsOptions(programs=20, seed=5), "loops")
    parts = split_indices(100, [0.7, 0.15, 0.15], seed=0)
    assert [len(p) for p in parts] == [70, 15, 15]
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    assert LOOPS_OPTIONS["programs"] % 2 == 0
