"""Intrinsic evaluation of inst2vec embeddings: the analogy test, nearest neighbours, a t-SNE map.

The analogy test is inst2vec's (Ben-Nun et al., NeurIPS 2018, https://arxiv.org/abs/1806.07336,
Section 5): 2,145 questions ``a : b :: c : d`` over the published vocabulary, in 14 types (operation
types, inverse operations, ...). A question is answered with the statements nearest by cosine to
``b - a + c`` (unit-length vectors). NCC's own evaluation counts a question as correct when ``d`` is
among the 5 nearest, with ``a``, ``b`` and ``c`` left in the candidates: the published evaluation
output (``res_published_results_emb.analogy.txt``, see ``$NCC_DATA/inst2vec/SOURCE.md``) lists ``b`` and
``c`` among the nearest neighbours and counts questions whose answer is 4th or 5th as correct; that is
``protocol="ncc"`` here, the one its 19.3 % (413 / 2,145) was measured with. ``protocol="3cosadd"`` is
the stricter word2vec test: the single nearest statement other than ``a``, ``b`` and ``c`` must be ``d``.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ncc.errors import DatasetError
from ncc.paths import data_home
from ncc.embeddings.skipgram import Embeddings

PROTOCOLS = ("ncc", "3cosadd")

#: Opcode families for plots, in the order of LLVM's language reference.
OPCODE_FAMILIES = OrderedDict([
    ("integer arithmetic", ("add", "sub", "mul", "udiv", "sdiv", "urem", "srem")),
    ("float arithmetic", ("fadd", "fsub", "fmul", "fdiv", "frem", "fneg")),
    ("bitwise", ("shl", "lshr", "ashr", "and", "or", "xor")),
    ("memory", ("alloca", "load", "store", "getelementptr", "fence", "cmpxchg", "atomicrmw")),
    ("conversion", ("trunc", "zext", "sext", "fptrunc", "fpext", "fptoui", "fptosi", "uitofp", "sitofp",
                    "ptrtoint", "inttoptr", "bitcast", "addrspacecast")),
    ("comparison", ("icmp", "fcmp")),
    ("control", ("ret", "br", "switch", "indirectbr", "invoke", "resume", "unreachable", "callbr", "phi",
                 "select")),
    ("call", ("call",)),
    ("vector / aggregate", ("extractelement", "insertelement", "shufflevector", "extractvalue",
                            "insertvalue")),
])
_FAMILY_OF = {opcode: family for family, opcodes in OPCODE_FAMILIES.items() for opcode in opcodes}
_OPCODE = re.compile(r"^(?:<%ID>\s*=\s*)?(?:tail\s+|musttail\s+|notail\s+)?([a-z]+)")


def opcode_of(statement: str) -> str:
    """The opcode of a normalised statement (``<%ID> = add i32 ...`` -> ``add``); ``?`` if none."""
    match = _OPCODE.match(statement.strip())
    return match.group(1) if match else "?"


def opcode_family(statement: str) -> str:
    """The family of a statement's opcode (:data:`OPCODE_FAMILIES`), or ``other``."""
    return _FAMILY_OF.get(opcode_of(statement), "other")


@dataclass(frozen=True)
class AnalogyQuestion:
    """``a : b :: c : d`` as statements, with the analogy type."""

    kind: str
    statements: tuple[str, str, str, str]


def load_analogies(path: str | os.PathLike | None = None) -> list[AnalogyQuestion]:
    """inst2vec's analogy questions (``$NCC_DATA/inst2vec/analogies/questions.jsonl`` by default)."""
    path = Path(path) if path is not None else data_home() / "inst2vec" / "analogies" / "questions.jsonl"
    if not path.is_file():
        raise DatasetError(f"no analogy questions at {path} (see datasets/ and $NCC_DATA)")
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            questions.append(AnalogyQuestion(record["type"], tuple(record["stmts"])))
    return questions


@dataclass
class AnalogyReport:
    """Analogy test results.

    Attributes:
        per_type: ``{type: (correct, asked)}`` in the order the types first appear.
        skipped: questions not asked because a statement is missing from the vocabulary.
        protocol, top_k: how questions were scored.
    """

    per_type: dict = field(default_factory=dict)
    skipped: int = 0
    protocol: str = "ncc"
    top_k: int = 5

    @property
    def correct(self) -> int:
        return sum(c for c, _ in self.per_type.values())

    @property
    def asked(self) -> int:
        return sum(n for _, n in self.per_type.values())

    @property
    def score(self) -> float:
        """Correct over asked (0 when nothing was asked)."""
        return self.correct / self.asked if self.asked else 0.0

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "top_k": self.top_k, "correct": self.correct, "asked": self.asked,
                "skipped": self.skipped, "score": round(self.score, 4),
                "per_type": {k: {"correct": c, "asked": n, "score": round(c / n, 4) if n else 0.0}
                             for k, (c, n) in self.per_type.items()}}

    def table(self) -> str:
        """A plain-text table, one line per type and a total."""
        lines = [f"{'analogy type':<82} {'correct':>7} {'asked':>6} {'%':>6}"]
        for kind, (c, n) in self.per_type.items():
            lines.append(f"{kind[:82]:<82} {c:>7} {n:>6} {100 * c / n if n else 0:>6.1f}")
        lines.append(f"{'total':<82} {self.correct:>7} {self.asked:>6} {100 * self.score:>6.1f}")
        return "\n".join(lines)


def evaluate_analogies(embeddings: Embeddings, questions: Sequence[AnalogyQuestion] | None = None,
                       protocol: str = "ncc", top_k: int = 5, batch: int = 512) -> AnalogyReport:
    """Answer analogy questions with ``b - a + c`` and count the right answers per type.

    Args:
        embeddings: the embeddings; questions are matched by statement, so any vocabulary works.
        questions: default :func:`load_analogies`.
        protocol: ``"ncc"`` (``d`` among the ``top_k`` nearest, question statements not excluded) or
            ``"3cosadd"`` (``d`` is the nearest statement other than ``a``, ``b``, ``c``; ``top_k`` ignored).
        top_k: candidates of the ``ncc`` protocol.
        batch: questions scored at once.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})")
    questions = load_analogies() if questions is None else questions
    index = embeddings.vocabulary.index_
    unknown = embeddings.vocabulary.unknown
    report = AnalogyReport(protocol=protocol, top_k=1 if protocol == "3cosadd" else top_k)
    asked, kinds = [], []
    for question in questions:
        report.per_type.setdefault(question.kind, (0, 0))
        if all(s in index and s != unknown for s in question.statements):
            asked.append([index[s] for s in question.statements])
            kinds.append(question.kind)
        else:
            report.skipped += 1
    if not asked:
        return report
    ids = np.asarray(asked, np.int64)
    unit = embeddings.normalised()
    hits = np.zeros(len(ids), bool)
    for start in range(0, len(ids), batch):
        q = ids[start:start + batch]
        target = unit[q[:, 1]] - unit[q[:, 0]] + unit[q[:, 2]]
        target /= np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)
        similarity = target @ unit.T
        rows = np.arange(len(q))
        if protocol == "3cosadd":
            for column in range(3):
                similarity[rows, q[:, column]] = -np.inf
            hits[start:start + len(q)] = similarity.argmax(axis=1) == q[:, 3]
        else:
            k = min(top_k, similarity.shape[1])
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            hits[start:start + len(q)] = (nearest == q[:, 3:4]).any(axis=1)
    for kind, hit in zip(kinds, hits):
        correct, total = report.per_type[kind]
        report.per_type[kind] = (correct + int(hit), total + 1)
    return report


def opcode_separation(embeddings: Embeddings, first: str = "add", second: str = "fdiv",
                      seen_only: bool = True) -> float:
    """How much closer statements of one opcode are to each other than to those of another.

    The mean cosine similarity between distinct ``first`` statements minus the mean cosine similarity
    between ``first`` and ``second`` statements: near 0 for random vectors, larger when the embedding
    groups the opcode (a cheap form of NCC's semantic category tests).

    Args:
        embeddings: the embeddings.
        first, second: opcodes (:func:`opcode_of`).
        seen_only: use only statements with corpus counts (the vocabulary's ``counts_``), so that the
            untrained rows of a fixed vocabulary do not dilute the figure.

    Raises:
        ValueError: fewer than two ``first`` statements or no ``second`` statement to compare.
    """
    vocabulary = embeddings.vocabulary
    seen = vocabulary.counts_ > 0 if seen_only else np.ones(len(vocabulary), bool)
    ones = [i for i, t in enumerate(vocabulary.tokens_) if seen[i] and opcode_of(t) == first]
    twos = [i for i, t in enumerate(vocabulary.tokens_) if seen[i] and opcode_of(t) == second]
    if len(ones) < 2 or not twos:
        raise ValueError(f"need two {first} statements and one {second} statement, have {len(ones)} and {len(twos)}")
    unit = embeddings.normalised()
    within = unit[ones] @ unit[ones].T
    within = within[~np.eye(len(ones), dtype=bool)].mean()
    between = (unit[ones] @ unit[twos].T).mean()
    return float(within - between)


def nearest_neighbours(embeddings: Embeddings, statement: str, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` statements nearest to ``statement`` by cosine similarity, itself excluded.

    Raises:
        KeyError: the statement is not in the vocabulary.
    """
    index = embeddings.vocabulary.index_
    if statement not in index:
        raise KeyError(f"statement not in the vocabulary: {statement}")
    unit = embeddings.normalised()
    similarity = unit @ unit[index[statement]]
    similarity[index[statement]] = -np.inf
    order = np.argsort(-similarity, kind="stable")[:k]
    tokens = embeddings.vocabulary.tokens_
    return [(tokens[i], float(similarity[i])) for i in order]


def plot_tsne(embeddings: Embeddings, path: str | os.PathLike, statements: Sequence[str] | None = None,
              perplexity: float = 30.0, seed: int = 0, title: str | None = None) -> Path:
    """A 2-D t-SNE map of statement vectors coloured by opcode family, saved as PNG.

    Args:
        embeddings: the embeddings.
        path: the PNG to write (atomically).
        statements: the statements to show (default: every token with a corpus count, else all but the
            unknown token).
        perplexity: t-SNE perplexity (lowered for few points).
        seed: t-SNE's random state.
        title: the plot title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    from ncc.fileio import atomic_write

    vocabulary = embeddings.vocabulary
    if statements is None:
        counted = vocabulary.counts_ > 0
        keep = counted if counted.any() else np.ones(len(vocabulary), bool)
        statements = [t for t, k in zip(vocabulary.tokens_, keep) if k and t != vocabulary.unknown]
    ids = vocabulary.transform(statements)
    if len(ids) < 3:
        raise ValueError("t-SNE needs at least 3 statements")
    points = TSNE(n_components=2, perplexity=min(perplexity, (len(ids) - 1) / 3), metric="cosine",
                  init="pca", random_state=seed).fit_transform(embeddings.matrix[ids])
    families = [opcode_family(s) for s in statements]
    figure, axes = plt.subplots(figsize=(9, 8), dpi=120)
    palette = plt.get_cmap("tab10")
    for k, family in enumerate([*OPCODE_FAMILIES, "other"]):
        mask = np.array([f == family for f in families])
        if mask.any():
            axes.scatter(points[mask, 0], points[mask, 1], s=6, color=palette(k % 10), label=f"{family} ({mask.sum()})")
    axes.legend(markerscale=3, fontsize=8, loc="best")
    axes.set_title(title or f"inst2vec t-SNE ({len(ids)} statements, dim {embeddings.dim})")
    axes.set_xticks([])
    axes.set_yticks([])
    figure.tight_layout()
    path = Path(path)
    atomic_write(path, lambda f: figure.savefig(f, format="png"), "wb")
    plt.close(figure)
    return path
