"""NodeVocabulary: ProGraML's vocabulary over node text."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ncc.embeddings.node_vocabulary import NodeVocabulary
from ncc.errors import DatasetError
from ncc.graph import EXTERNAL_TEXT, build

IR = """
define i32 @f(i32 %a, i32 %b) {
entry:
  %c = add i32 %a, %b
  %d = mul i32 %c, 3
  %e = add i32 %d, %a
  ret i32 %e
}
"""
FLOAT_IR = """
define double @g(double %x) {
entry:
  %y = fdiv double %x, 2.0
  ret double %y
}
"""


@pytest.fixture(scope="module")
def graphs():
    return build(IR), build(FLOAT_IR)


def test_fit_counts_and_order(graphs):
    vocabulary = NodeVocabulary().fit([graphs[0]])
    # texts: [external], add x2, mul, ret; i32 variables: a, b, c, d, e (5) + constant 3 (i32)
    assert vocabulary.tokens_[0] == "i32"
    assert vocabulary.counts_[0] == 6
    assert vocabulary.tokens_[1] == "add" and vocabulary.counts_[1] == 2
    assert vocabulary.tokens_[-1] == "!UNK" and vocabulary.counts_[-1] == 0
    assert set(vocabulary.tokens_) == {"i32", "add", "mul", "ret", EXTERNAL_TEXT, "!UNK"}
    assert vocabulary.index_["mul"] == vocabulary.tokens_.index("mul")
    assert len(vocabulary) == 6 and vocabulary.unknown_id == 5
    assert "add" in vocabulary and "!UNK" not in vocabulary


def test_transform_and_unknown(graphs):
    vocabulary = NodeVocabulary().fit([graphs[0]])
    ids = vocabulary.transform(graphs[0])
    assert ids.dtype == np.int64 and ids.shape == (graphs[0].num_nodes,)
    assert [vocabulary.tokens_[i] for i in ids] == list(graphs[0].node_text)
    other = vocabulary.transform(graphs[1])
    texts = list(graphs[1].node_text)
    for text, i in zip(texts, other):
        assert i == (vocabulary.index_[text] if text in vocabulary else vocabulary.unknown_id)
    assert vocabulary.unknown_id in other  # fdiv and double are unknown
    assert vocabulary.transform(["ret", "no such text"]).tolist() == [vocabulary.index_["ret"], 5]
    assert 0 < vocabulary.coverage([graphs[1]]) < 1


def test_min_count_cuts_rare_texts(graphs):
    vocabulary = NodeVocabulary(min_count=2).fit(graphs)
    assert "mul" not in vocabulary and "add" in vocabulary
    assert vocabulary.counts_[-1] == sum(1 for g in graphs for t in g.node_text
                                         if t not in vocabulary and t != "!UNK")
    assert vocabulary.transform(["mul"]).tolist() == [vocabulary.unknown_id]


def test_fit_on_generator_and_fit_transform(graphs):
    a = NodeVocabulary().fit(g for g in graphs)
    b = NodeVocabulary()
    ids = b.fit_transform(list(graphs))
    assert a.tokens_ == b.tokens_
    assert [i.tolist() for i in ids] == [a.transform(g).tolist() for g in graphs]


def test_save_load_round_trip(graphs, tmp_path):
    vocabulary = NodeVocabulary(min_count=1).fit(graphs)
    path = vocabulary.save(tmp_path / "vocab.json")
    assert json.loads(path.read_text())["tokens"] == vocabulary.tokens_
    loaded = NodeVocabulary.load(path)
    assert loaded.tokens_ == vocabulary.tokens_ and loaded.min_count == 1
    assert np.array_equal(loaded.counts_, vocabulary.counts_)
    assert np.array_equal(loaded.transform(graphs[1]), vocabulary.transform(graphs[1]))
    vocabulary.save(tmp_path)
    assert NodeVocabulary.load(tmp_path).tokens_ == vocabulary.tokens_


def test_errors(graphs, tmp_path):
    with pytest.raises(RuntimeError, match="not fitted"):
        NodeVocabulary().transform(graphs[0])
    with pytest.raises(ValueError, match="min_count"):
        NodeVocabulary(min_count=0).fit(graphs)
    with pytest.raises(TypeError, match="ProgramGraph"):
        NodeVocabulary().fit([42])
    with pytest.raises(DatasetError, match="no node vocabulary"):
        NodeVocabulary.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"format": 1}')
    with pytest.raises(DatasetError, match="not a node vocabulary"):
        NodeVocabulary.load(tmp_path / "bad.json")
