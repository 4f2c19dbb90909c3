"""Analogies, nearest neighbours and the t-SNE plot, on embeddings whose answers are known."""

import numpy as np
import pytest

from ncc.embeddings import Embeddings, Vocabulary, evaluate_analogies, load_analogies, nearest_neighbours, plot_tsne
from ncc.embeddings.evaluate import AnalogyQuestion, opcode_family, opcode_separation
from ncc.paths import data_home

TOKENS = ["<%ID> = add i32 <%ID>, <%ID>", "<%ID> = add i64 <%ID>, <%ID>", "<%ID> = sub i32 <%ID>, <%ID>",
          "<%ID> = sub i64 <%ID>, <%ID>", "<%ID> = fdiv float <%ID>, <%ID>", "store i32 <%ID>, i32* <%ID>"]


def synthetic():
    """Vectors op + type: add/sub and i32/i64 are directions, so add i32 : add i64 :: sub i32 : sub i64."""
    add, sub, i32, i64, other = np.eye(5)[:5]
    rows = [add + i32, add + i64, sub + i32, sub + i64, other + 0.1 * i32, 0.3 * other + 0.2 * add]
    vocabulary = Vocabulary().fit_counts({t: 10 - k for k, t in enumerate(TOKENS)})
    matrix = np.zeros((len(vocabulary), 5), np.float32)
    matrix[vocabulary.transform(TOKENS)] = rows
    matrix[vocabulary.unknown_id] = -1
    return Embeddings(vocabulary, matrix)


QUESTIONS = [AnalogyQuestion("type", (TOKENS[0], TOKENS[1], TOKENS[2], TOKENS[3])),
             AnalogyQuestion("type", (TOKENS[2], TOKENS[3], TOKENS[0], TOKENS[1])),
             AnalogyQuestion("wrong", (TOKENS[0], TOKENS[1], TOKENS[2], TOKENS[4])),
             AnalogyQuestion("missing", (TOKENS[0], "not in the vocabulary", TOKENS[2], TOKENS[3]))]


def test_analogies_with_known_answers():
    embeddings = synthetic()
    strict = evaluate_analogies(embeddings, QUESTIONS, protocol="3cosadd")
    assert strict.per_type == {"type": (2, 2), "wrong": (0, 1), "missing": (0, 0)}
    assert strict.skipped == 1 and strict.score == pytest.approx(2 / 3)
    ncc = evaluate_analogies(embeddings, QUESTIONS, protocol="ncc", top_k=1)
    # with a, b, c left in, b - a + c = sub i64 is still its own nearest neighbour here
    assert ncc.per_type["type"] == (2, 2)
    report = ncc.to_dict()
    assert report["correct"] == 2 and report["asked"] == 3 and "type" in ncc.table()


def test_nearest_neighbours():
    embeddings = synthetic()
    neighbours = nearest_neighbours(embeddings, TOKENS[0], k=2)
    assert [t for t, _ in neighbours] == [TOKENS[1], TOKENS[2]]
    assert neighbours[0][1] == pytest.approx(0.5)
    with pytest.raises(KeyError):
        nearest_neighbours(embeddings, "nope")


def test_opcode_family():
    assert opcode_family("<%ID> = add nsw i32 <%ID>, <INT>") == "integer arithmetic"
    assert opcode_family("store float <%ID>, float* <%ID>, align 4") == "memory"
    assert opcode_family("<%ID> = tail call i32 <@ID>(i32 <%ID>)") == "call"
    assert opcode_family("br label <%ID>") == "control"


def test_tsne_plot_is_a_png(tmp_path):
    path = plot_tsne(synthetic(), tmp_path / "tsne.png", statements=TOKENS)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_published_analogy_questions_load():
    path = data_home() / "inst2vec" / "analogies" / "questions.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found (set NCC_DATA to the shared data folder)")
    questions = load_analogies()
    assert len(questions) == 2145 and len({q.kind for q in questions}) == 14


def test_opcode_separation_on_known_vectors():
    embeddings = synthetic()
    # the two add rows share the add direction (cosine 1/2); add and fdiv rows are orthogonal-ish
    add32, add64, fdiv = (embeddings.normalised()[embeddings.vocabulary.index_[TOKENS[k]]] for k in (0, 1, 4))
    expected = float(add32 @ add64) - float((add32 @ fdiv + add64 @ fdiv) / 2)
    assert opcode_separation(embeddings, "add", "fdiv") == pytest.approx(expected)
    assert opcode_separation(embeddings, "add", "fdiv") > 0.4
    with pytest.raises(ValueError):
        opcode_separation(embeddings, "fdiv", "add")  # one fdiv statement only
