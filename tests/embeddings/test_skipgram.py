"""Skip-gram training on a tiny real corpus: both backends learn that add statements belong together."""

import numpy as np
import pytest

from ncc.embeddings import Embeddings, PairStore, SkipGram, Vocabulary, iter_module_contexts, module_context
from ncc.embeddings.corpus import PairSource
from ncc.embeddings.evaluate import opcode_of
from ncc.embeddings.normalise import module_statements
from ncc.frontend import load


@pytest.fixture(scope="module")
def corpus(tiny_corpus, tmp_path_factory):
    store = PairStore(tmp_path_factory.mktemp("pairs"), shard_pairs=500)  # several shards
    for _, context, reason in iter_module_contexts(tiny_corpus, context_size=2, workers=2, progress=False):
        assert context is not None, reason
        store.add(context)
    store.flush()
    vocabulary = Vocabulary(min_count=1, subsample=0.0).fit_counts(store.statement_counts())
    source = PairSource.from_store(store, vocabulary.transform(store.statements))
    return store, vocabulary, source


def separation(matrix, vocabulary):
    """Mean cosine among add statements minus mean cosine between add and fdiv statements."""
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    adds = [i for i, t in enumerate(vocabulary.tokens_) if opcode_of(t) == "add"]
    fdivs = [i for i, t in enumerate(vocabulary.tokens_) if opcode_of(t) == "fdiv"]
    assert len(adds) >= 2 and len(fdivs) >= 2
    within = unit[adds] @ unit[adds].T
    within = within[~np.eye(len(adds), dtype=bool)].mean()
    between = (unit[adds] @ unit[fdivs].T).mean()
    return within - between


def test_store_streams_every_pair_in_shards(corpus, tiny_corpus):
    store, vocabulary, source = corpus
    chunks = list(source)
    assert len(chunks) > 1 and sum(len(c) for c in chunks) == store.num_pairs == source.num_pairs
    assert list(source)[0].tolist() == chunks[0].tolist()  # restartable
    assert store.num_modules == len(tiny_corpus)
    first = module_context(load(tiny_corpus[0][1]), 2)
    assert chunks[0][:len(first.pairs)].tolist() == vocabulary.transform(
        np.asarray(first.statements, object)[first.pairs].ravel()).reshape(-1, 2).tolist()


def test_random_vectors_fail_the_separation_check(corpus):
    _, vocabulary, _ = corpus
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert separation(rng.normal(size=(len(vocabulary), 64)), vocabulary) < 0.18


@pytest.mark.parametrize("backend", ["dense", "gensim", "torch"])
def test_training_puts_add_statements_together(corpus, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    _, vocabulary, source = corpus
    model = SkipGram(dim=64, epochs=40 if backend == "gensim" else 100, negative=5, backend=backend, workers=1,
                     seed=1, batch_size=256, learning_rate=0.02, device="cpu", progress=False,
                     steps=100, dense_learning_rate=0.02)
    assert not hasattr(model, "embeddings_")
    model.fit(source, vocabulary)
    embeddings = model.embeddings_
    assert embeddings.matrix.shape == (len(vocabulary), 64) and embeddings.matrix.dtype == np.float32
    assert model.stats_["pairs"] == source.num_pairs and model.stats_["trained_pairs"] > 0
    assert separation(embeddings.matrix, vocabulary) > 0.18


def test_embeddings_round_trip_and_graph_ids(corpus, tiny_corpus, tmp_path):
    _, vocabulary, source = corpus
    embeddings = SkipGram(dim=8, epochs=1, backend="gensim", progress=False).fit(source, vocabulary).embeddings_
    embeddings.save(tmp_path)
    loaded = Embeddings.load(tmp_path)
    assert np.array_equal(loaded.matrix, embeddings.matrix) and loaded.vocabulary.tokens_ == vocabulary.tokens_
    assert loaded.metadata["training"]["backend"] == "gensim"
    graph, statements = module_statements(load(tiny_corpus[0][1]))
    statements = list(statements)
    first_instruction = next(i for i, s in enumerate(statements) if s is not None)
    statements[first_instruction] = "never seen"
    ids = loaded.ids_for_graph(graph, statements)
    assert ids.shape == (graph.num_nodes,)
    assert ids[0] == loaded.external_id == len(vocabulary) + 2
    assert set(ids[graph.node_type == 1]) == {loaded.variable_id} and set(ids[graph.node_type == 2]) <= {loaded.constant_id}
    assert ids[first_instruction] == vocabulary.unknown_id
    others = [i for i, s in enumerate(statements) if s is not None and i != first_instruction]
    assert ids[others].tolist() == vocabulary.transform([statements[i] for i in others]).tolist()
    features = loaded.feature_matrix()
    assert features.shape == (len(vocabulary) + 3, 8) and not features[len(vocabulary):].any()


def test_cooccurrence_counts_every_pair_both_ways(corpus):
    store, vocabulary, source = corpus
    matrix = source.cooccurrence(len(vocabulary))
    pairs = np.concatenate(list(source))
    assert matrix.shape == (len(vocabulary), len(vocabulary)) and matrix.sum() == 2 * source.num_pairs
    assert (matrix != matrix.T).nnz == 0
    a, b = pairs[0]
    expected = np.sum((pairs[:, 0] == a) & (pairs[:, 1] == b)) + np.sum((pairs[:, 0] == b) & (pairs[:, 1] == a))
    assert matrix[a, b] == expected * (2 if a == b else 1)


def test_dense_backend_is_seeded_and_keeps_unseen_rows(corpus):
    _, vocabulary, source = corpus
    counts = vocabulary.counts_.copy()
    counts[0] = 0  # a statement without counts or pairs keeps its initial vector
    unseen = Vocabulary(min_count=1, subsample=0.0)
    unseen._set(vocabulary.tokens_, counts)
    pairs = np.concatenate(list(source))
    pairs = pairs[(pairs != 0).all(axis=1)]
    model = SkipGram(dim=16, steps=20, seed=3, progress=False).fit(pairs, unseen)
    first = model.embeddings_.matrix
    assert model.stats_["backend"] == "dense" and model.stats_["trained_pairs"] == 2 * len(pairs)
    assert model.stats_["statements_used"] == int((counts > 0).sum()) and model.stats_["distinct_pairs"] > 0
    second = SkipGram(dim=16, steps=20, seed=3, progress=False).fit(pairs, unseen).embeddings_.matrix
    initial = SkipGram(dim=16, steps=0, seed=3, progress=False).fit(pairs, unseen).embeddings_.matrix
    assert np.array_equal(first, second)
    assert np.array_equal(first[0], initial[0]) and not np.allclose(first[1:], initial[1:])
