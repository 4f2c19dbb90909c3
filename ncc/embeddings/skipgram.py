"""Skip-gram with negative sampling over XFG context pairs, and the :class:`Embeddings` it produces.

inst2vec (Ben-Nun et al., NeurIPS 2018, https://arxiv.org/abs/1806.07336) trains word2vec's skip-gram
with negative sampling (Mikolov et al. 2013) on (statement, context statement) pairs taken from
contextual flow graphs instead of from windows of text. Two backends train the same model:

- ``gensim``: the pairs are written as a text corpus with one two-token sentence per unordered pair
  (``"a b"``) and gensim's ``Word2Vec`` (``sg=1``, negative sampling) trains on it in ``corpus_file``
  mode with ``window=1``. With a window of one and two-token sentences, gensim trains exactly the pairs
  ``a -> b`` and ``b -> a`` and nothing else, and ``corpus_file`` mode runs all workers in C without the
  GIL. Gensim's vocabulary is built from the corpus statement counts (not the pair file), so negative
  sampling (``count ** 0.75``) and frequent-statement subsampling (``sample``) use statement
  frequencies, as word2vec does for words; subsampling drops a sentence's token, and with it the pair.
- ``torch``: the same loss, minibatched: each pair in both directions with ``negative`` noise
  statements drawn from ``count ** 0.75``, the same per-epoch subsampling of pair ends, sparse
  embeddings and a sparse Adam optimiser (plain SGD with word2vec's learning rate diverges on the
  summed gradients of frequent statements in large batches) with a linearly decaying learning rate.
  Runs on CUDA when available.

- ``dense`` (the default): the pairs are counted once into a sparse co-occurrence matrix, and the
  *expected* negative-sampling loss over all of them (subsampling and noise draws in expectation, as
  Levy & Goldberg 2014 write it) is minimised by full-batch Adam on the statements that occur. A
  corpus of many modules has few distinct statements (424 of the published vocabulary occur in 2,666
  -O0 modules) and few distinct pairs (13,873 (a, b) id pairs for 12.6 M context pairs; counted in
  0.9 s), so a step costs the same whatever the corpus size and training is one streaming pass plus
  seconds of dense algebra.

Why ``dense`` is the default (measured on 2,666 modules -- 2,000 sampled POJ-104 programs and the
devmap and coarsening kernels -- from clang-14, published vocabulary, 2 cores; ``benchmarks/embed.py``
and the numbers in ``benchmarks/results/embed/``): on the -O0 corpus (12.6 M context pairs) gensim's 5
epochs took 99-146 s (1.3 M directed pairs/s: a whole-POJ-104 corpus would take ~35 min) and scored
95 / 2,145 analogies (NCC protocol), 46 (3CosAdd), add-vs-fdiv cosine separation 0.17; the dense
backend took 3-15 s and scored 99-109 / 52-59 / 0.19-0.27 (means over 3 seeds). The other speed-ups
considered (longer gensim sentences from XFG random walks, fewer epochs) still pay per pair and change
which pairs are trained; counting pairs makes training cost independent of the corpus size instead.
Fitting the expected loss more closely (more steps or a larger rate) scores *lower* on analogies
(0.02 x 300 steps: 74 / 28), as statements with few pairs then fit them exactly; the default, 300 steps
from a rate of 0.005, is the best measured on the -O0 + -O2 + -O2 -ffast-math corpus (191 / 88; gensim on
the same corpus: 158 / 68 in 180 s). On 10,000 POJ-104 programs and the kernels at those three levels
(31,710 modules, 48.4 M pairs) the dense backend trained in 15.6 s (3.4 s counting, 12.0 s for 300
steps over the 1,103 statements that occur); gensim at its measured rate would need ~6 min.

Statements of the vocabulary that never occur in the corpus keep their (seeded) initial vectors.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ncc.errors import DatasetError
from ncc.fileio import atomic_write
from ncc.embeddings.corpus import PairSource
from ncc.embeddings.vocabulary import Vocabulary
from ncc.graph.program_graph import CONSTANT, INSTRUCTION, VARIABLE, ProgramGraph

logger = logging.getLogger(__name__)

EMBEDDINGS_FILE = "embeddings.npy"
METADATA_FILE = "embeddings.json"
BACKENDS = ("dense", "gensim", "torch")

#: Tokens for program-graph nodes that are not statements, in the order of their reserved ids, which
#: follow the vocabulary (``V``, ``V+1``, ``V+2``): the first two as in ProGraML's augmented inst2vec
#: dictionary; the third for the external node.
RESERVED_TOKENS = ("!IDENTIFIER", "!IMMEDIATE", "!EXTERNAL")


@dataclass(frozen=True, eq=False)
class Embeddings:
    """A vocabulary and its embedding matrix.

    Attributes:
        vocabulary: the fitted :class:`Vocabulary`; row ``i`` of ``matrix`` embeds ``vocabulary.tokens_[i]``.
        matrix: ``float32 [V, dim]``.
        metadata: how it was trained (settings, corpus size), saved alongside.

    Shapes:
        V statements (the unknown token included), dim dimensions.
    """

    vocabulary: Vocabulary
    matrix: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.vocabulary):
            raise ValueError(f"matrix of shape {self.matrix.shape} for a vocabulary of {len(self.vocabulary)}")

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def variable_id(self) -> int:
        """The id of variable nodes (``!IDENTIFIER``): ``V``."""
        return len(self.vocabulary)

    @property
    def constant_id(self) -> int:
        """The id of constant nodes (``!IMMEDIATE``): ``V + 1``."""
        return len(self.vocabulary) + 1

    @property
    def external_id(self) -> int:
        """The id of the external node (``!EXTERNAL``): ``V + 2``."""
        return len(self.vocabulary) + 2

    def vector(self, statement: str) -> np.ndarray:
        """The vector of a normalised statement (the unknown token's when it is not in the vocabulary)."""
        return self.matrix[self.vocabulary.index_.get(statement, self.vocabulary.unknown_id)]

    def ids_for_graph(self, graph: ProgramGraph, statements: Sequence[str | None]) -> np.ndarray:
        """inst2vec feature ids for every node of a program graph.

        Args:
            graph: the program graph.
            statements: per node, its normalised statement or None
                (:func:`ncc.embeddings.normalise.module_statements`).

        Returns:
            ``int64 [N]``: the vocabulary id of each instruction's statement (the unknown token's id for
            statements outside the vocabulary, and for an instruction without a statement), and the
            reserved ids :attr:`variable_id` for variables, :attr:`constant_id` for constants and
            :attr:`external_id` for the external node. Rows of :meth:`feature_matrix`.
        """
        if len(statements) != graph.num_nodes:
            raise ValueError(f"statements has {len(statements)} entries for a graph of {graph.num_nodes} nodes")
        index, unknown = self.vocabulary.index_, self.vocabulary.unknown_id
        ids = np.fromiter((index.get(s, unknown) if s is not None else unknown for s in statements),
                          dtype=np.int64, count=graph.num_nodes)
        ids[graph.node_type == VARIABLE] = self.variable_id
        ids[graph.node_type == CONSTANT] = self.constant_id
        if graph.num_nodes and graph.node_type[0] == INSTRUCTION:
            ids[0] = self.external_id
        return ids

    def feature_matrix(self) -> np.ndarray:
        """``float32 [V + 3, dim]``: the matrix with zero rows for the reserved ids (see :meth:`ids_for_graph`)."""
        return np.concatenate([self.matrix, np.zeros((len(RESERVED_TOKENS), self.dim), np.float32)])

    def normalised(self) -> np.ndarray:
        """Rows scaled to unit length (zero rows stay zero), ``float32 [V, dim]``."""
        norms = np.linalg.norm(self.matrix, axis=1, keepdims=True)
        return (self.matrix / np.where(norms == 0, 1, norms)).astype(np.float32)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``embeddings.npy``, ``vocabulary.json`` and ``embeddings.json`` (metadata), atomically."""
        directory = Path(directory)
        atomic_write(directory / EMBEDDINGS_FILE, lambda f: np.save(f, self.matrix.astype(np.float32)), "wb")
        self.vocabulary.save(directory)
        atomic_write(directory / METADATA_FILE, json.dumps({"dim": self.dim, **self.metadata}, indent=1))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Embeddings":
        """Read embeddings written by :meth:`save`."""
        directory = Path(directory)
        try:
            matrix = np.load(directory / EMBEDDINGS_FILE, allow_pickle=False)
        except FileNotFoundError:
            raise DatasetError(f"no {EMBEDDINGS_FILE} in {directory}") from None
        metadata_path = directory / METADATA_FILE
        metadata = json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
        metadata.pop("dim", None)
        return cls(Vocabulary.load(directory), matrix.astype(np.float32, copy=False), metadata)


class SkipGram:
    """Skip-gram with negative sampling over (statement, context) pairs, scikit-learn style.

    Args:
        dim: embedding dimension (inst2vec: 200).
        epochs: passes over the pairs (gensim, torch; the dense backend makes one counting pass).
        negative: noise statements per pair.
        alpha: initial learning rate of the gensim backend (word2vec's SGD), decaying linearly to
            ``min_alpha``.
        min_alpha: final learning rate of the gensim backend.
        learning_rate: initial learning rate of the torch backend (sparse Adam), decaying linearly to 0.
        batch_size: pairs per step of the torch backend (each trained in both directions).
        backend: ``"dense"``, ``"gensim"`` or ``"torch"`` (see the module docstring).
        workers: threads of the gensim backend; CPU threads of the torch backend on CPU.
        seed: seeds initialisation, sampling and shuffling (gensim is bit-reproducible only with
            ``workers=1``).
        device: torch device (default: ``cuda`` when available, else ``cpu``).
        progress: show progress bars.
        steps: full-batch steps of the dense backend.
        dense_learning_rate: initial Adam learning rate of the dense backend, decaying linearly to 0.

    Attributes:
        embeddings_: the trained :class:`Embeddings`.
        stats_: ``pairs`` (unordered pairs per epoch), ``trained_pairs`` (directed pairs trained over
            all epochs, after subsampling; dense: the directed pairs counted, ``2 * pairs``), ``seconds``,
            ``pairs_per_second`` (directed, trained), ``backend``, ``device``; the dense backend adds
            ``count_seconds`` (the counting pass, which grows with the corpus), ``step_seconds`` (the
            steps, which grow with the statements that occur), ``statements_used`` and ``distinct_pairs``.
    """

    def __init__(self, dim: int = 200, epochs: int = 5, negative: int = 5, alpha: float = 0.025,
                 min_alpha: float = 1e-4, learning_rate: float = 2e-3, batch_size: int = 4096,
                 backend: str = "dense", workers: int = 1, seed: int = 0, device: str | None = None,
                 progress: bool = True, steps: int = 300, dense_learning_rate: float = 0.005):
        self.dim = dim
        self.steps = steps
        self.dense_learning_rate = dense_learning_rate
        self.epochs = epochs
        self.negative = negative
        self.alpha = alpha
        self.min_alpha = min_alpha
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.backend = backend
        self.workers = workers
        self.seed = seed
        self.device = device
        self.progress = progress

    def get_params(self) -> dict:
        """The settings, as given to ``__init__``."""
        return {name: getattr(self, name) for name in ("dim", "epochs", "negative", "alpha", "min_alpha",
                                                        "learning_rate", "batch_size", "backend", "workers",
                                                        "seed", "device", "steps", "dense_learning_rate")}

    def fit(self, pairs: PairSource | np.ndarray, vocabulary: Vocabulary) -> "SkipGram":
        """Train on unordered pairs of vocabulary ids.

        Args:
            pairs: ``[P, 2]`` vocabulary ids (each unordered pair once; both directions are trained), as an
                array or a restartable :class:`PairSource` streamed from disk once per epoch.
            vocabulary: the vocabulary, with corpus counts in ``counts_`` (used for negative sampling and
                subsampling; all-zero counts mean uniform noise and no subsampling).

        Returns:
            self, with ``embeddings_`` and ``stats_``.
        """
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r} (choose from {', '.join(BACKENDS)})")
        if isinstance(pairs, np.ndarray):
            pairs = PairSource.from_array(pairs)
        started = time.perf_counter()
        train = {"dense": _train_dense, "gensim": _train_gensim, "torch": _train_torch}[self.backend]
        matrix, trained, device, *extra = train(self, pairs, vocabulary)
        seconds = time.perf_counter() - started
        self.stats_ = {"backend": self.backend, "device": device, "pairs": pairs.num_pairs,
                       "trained_pairs": int(trained), "seconds": round(seconds, 3),
                       "pairs_per_second": round(trained / seconds, 1) if seconds > 0 else 0.0,
                       **(extra[0] if extra else {})}
        metadata = {"training": {**self.get_params(), **self.stats_}}
        self.embeddings_ = Embeddings(vocabulary, matrix.astype(np.float32), metadata)
        logger.info("skip-gram (%s): %d pairs x %d epochs in %.1f s", self.backend, pairs.num_pairs,
                    self.epochs, seconds)
        return self


def _initial_matrix(size: int, dim: int, seed: int) -> np.ndarray:
    """word2vec's initialisation: uniform in ``[-0.5/dim, 0.5/dim)``."""
    rng = np.random.default_rng(seed)
    return ((rng.random((size, dim), dtype=np.float32) - 0.5) / dim).astype(np.float32)


def _train_gensim(model: SkipGram, pairs: PairSource, vocabulary: Vocabulary) -> tuple[np.ndarray, int, str]:
    from gensim.models import Word2Vec

    counts = vocabulary.counts_
    matrix = _initial_matrix(len(vocabulary), model.dim, model.seed)
    if pairs.num_pairs == 0 or not counts.any():
        return matrix, 0, "cpu"
    words = np.char.mod("%d", np.arange(len(vocabulary)))
    with tempfile.TemporaryDirectory(prefix="ncc-skipgram-") as folder:
        corpus = Path(folder) / "pairs.txt"
        with open(corpus, "w", encoding="ascii") as stream:
            for chunk in tqdm(pairs, desc="write pairs", unit="chunk", disable=not model.progress):
                if chunk.shape[0]:
                    lines = np.char.add(np.char.add(words[chunk[:, 0]], " "), words[chunk[:, 1]])
                    stream.write("\n".join(lines.tolist()))
                    stream.write("\n")
        w2v = Word2Vec(vector_size=model.dim, sg=1, hs=0, negative=model.negative, window=1, min_count=1,
                       sample=vocabulary.subsample, alpha=model.alpha, min_alpha=model.min_alpha,
                       seed=model.seed, workers=model.workers)
        w2v.build_vocab_from_freq({str(i): int(c) for i, c in enumerate(counts) if c > 0})
        trained, _ = w2v.train(corpus_file=str(corpus), total_words=2 * pairs.num_pairs, epochs=model.epochs,
                               compute_loss=False)
    rows = np.asarray([int(key) for key in w2v.wv.index_to_key])
    matrix[rows] = w2v.wv.vectors
    # gensim counts effective words (after subsampling); a two-token sentence with both kept is 2 pairs
    return matrix, int(trained), "cpu"


def _train_torch(model: SkipGram, pairs: PairSource, vocabulary: Vocabulary) -> tuple[np.ndarray, int, str]:
    import torch

    device = torch.device(model.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and model.workers:
        torch.set_num_threads(model.workers)
    generator = torch.Generator(device=device).manual_seed(model.seed)
    size, dim = len(vocabulary), model.dim
    initial = torch.from_numpy(_initial_matrix(size, dim, model.seed))
    source = torch.nn.Embedding(size, dim, sparse=True).to(device)
    target = torch.nn.Embedding(size, dim, sparse=True).to(device)
    with torch.no_grad():
        source.weight.copy_(initial.to(device))
        target.weight.zero_()
    counts = torch.as_tensor(vocabulary.counts_, dtype=torch.float64)
    noise = counts.pow(0.75) if counts.sum() > 0 else torch.ones(size, dtype=torch.float64)
    noise_cdf = (noise.cumsum(0) / noise.sum()).to(torch.float32).to(device)
    keep = torch.as_tensor(vocabulary.keep_probabilities(), dtype=torch.float32, device=device)
    optimizer = torch.optim.SparseAdam(list(source.parameters()) + list(target.parameters()),
                                       lr=model.learning_rate)
    total_steps = max(1, model.epochs * math.ceil(pairs.num_pairs / model.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total_steps))
    logsigmoid = torch.nn.functional.logsigmoid
    trained = 0
    bar = tqdm(total=model.epochs * pairs.num_pairs, desc="skip-gram", unit="pair", unit_scale=True,
               disable=not model.progress)
    for _ in range(model.epochs):
        for chunk in pairs:
            chunk = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.int64)).to(device)
            chunk = chunk[torch.randperm(chunk.shape[0], generator=generator, device=device)]
            for start in range(0, chunk.shape[0], model.batch_size):
                batch = chunk[start:start + model.batch_size]
                kept = (torch.rand(batch.shape, generator=generator, device=device) < keep[batch]).all(dim=1)
                batch = batch[kept]
                if batch.shape[0]:
                    centre = torch.cat([batch[:, 0], batch[:, 1]])
                    context = torch.cat([batch[:, 1], batch[:, 0]])
                    draws = torch.rand((centre.shape[0], model.negative), generator=generator, device=device)
                    negatives = torch.searchsorted(noise_cdf, draws).clamp_(max=size - 1)
                    v = source(centre)
                    positive = (v * target(context)).sum(-1)
                    negative = torch.bmm(target(negatives), v.unsqueeze(-1)).squeeze(-1)
                    loss = -(logsigmoid(positive).sum() + logsigmoid(-negative).sum()) / centre.shape[0]
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    trained += int(centre.shape[0])
                scheduler.step()
                bar.update(min(model.batch_size, chunk.shape[0] - start))
    bar.close()
    return source.weight.detach().cpu().numpy(), trained, str(device)


def _train_dense(model: SkipGram, pairs: PairSource, vocabulary: Vocabulary) -> tuple[np.ndarray, int, str, dict]:
    """Full-batch skip-gram: the expected negative-sampling loss over the pair counts, minimised with Adam.

    One pass over the pairs counts them into ``N[a, b]`` (:meth:`PairSource.cooccurrence`); subsampling
    keeps a pair with probability ``keep[a] * keep[b]``, so the pairs that word2vec would train on
    average ``N'[a, b] = keep[a] N[a, b] keep[b]``. Word2vec's loss summed over all of them, with
    ``negative`` noise statements per pair drawn from ``q ∝ count ** 0.75``, is in expectation

        L = -Σ_ab N'[a, b] log σ(w_a·c_b) - negative · Σ_a (Σ_b N'[a, b]) Σ_n q[n] log σ(-w_a·c_n)

    which needs only the statements that occur (``u`` of them): each step is three dense ``[u, u] x
    [u, dim]`` products, whatever the number of pairs. Returns the input vectors ``w``.
    """
    from scipy.special import expit

    size, dim = len(vocabulary), model.dim
    matrix = _initial_matrix(size, dim, model.seed)
    counts = vocabulary.counts_.astype(np.float64)
    if pairs.num_pairs == 0 or not counts.any():
        return matrix, 0, "cpu", {}
    started = time.perf_counter()
    cooccurrence = pairs.cooccurrence(size)
    counted = time.perf_counter()
    keep = vocabulary.keep_probabilities()
    import scipy.sparse as sp

    weighted = (sp.diags(keep) @ cooccurrence @ sp.diags(keep)).tocsr()
    row_total = np.asarray(weighted.sum(axis=1)).ravel()
    noise = counts ** 0.75
    noise /= noise.sum()
    used = np.flatnonzero((row_total > 0) | (noise > 0))
    positive = weighted[used][:, used].tocsr().astype(np.float32)
    total = float(row_total.sum())
    row_weight = (model.negative * row_total[used] / total).astype(np.float32)
    noise_used = noise[used].astype(np.float32)
    positive = (positive / total).astype(np.float32).tocsr()
    u = used.shape[0]
    w = matrix[used].copy()
    c = np.zeros((u, dim), np.float32)
    block = max(1, min(u, (1 << 24) // max(u, 1)))  # rows per block: ~64 MB of float32 scores
    dense_blocks = [positive[s:s + block].toarray() for s in range(0, u, block)] if u * u <= (1 << 27) else None
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    moments = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(c), np.zeros_like(c)]
    bar = tqdm(total=model.steps, desc="skip-gram (dense)", unit="step", disable=not model.progress)
    for step in range(1, model.steps + 1):
        grad_w = np.empty_like(w)
        grad_c = np.zeros_like(c)
        for k, start in enumerate(range(0, u, block)):
            stop = min(u, start + block)
            scores = w[start:stop] @ c.T
            sig = expit(scores)
            target = dense_blocks[k] if dense_blocks is not None else positive[start:stop].toarray()
            # d/dS of -N' log σ(S) - r q log σ(-S) = -N' (1 - σ(S)) + r q σ(S)
            g = np.outer(row_weight[start:stop], noise_used) * sig
            g -= target * (1.0 - sig)
            grad_w[start:stop] = g @ c
            grad_c += g.T @ w[start:stop]
        rate = model.dense_learning_rate * (1.0 - (step - 1) / model.steps)
        for param, grad, m, v in ((w, grad_w, moments[0], moments[1]), (c, grad_c, moments[2], moments[3])):
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            m_hat = m / (1 - beta1 ** step)
            v_hat = v / (1 - beta2 ** step)
            param -= rate * m_hat / (np.sqrt(v_hat) + eps)
        bar.update(1)
    bar.close()
    matrix[used] = w
    logger.info("dense skip-gram: %d statements, %d distinct pairs, %d steps", u, cooccurrence.nnz, model.steps)
    extra = {"count_seconds": round(counted - started, 3), "step_seconds": round(time.perf_counter() - counted, 3),
             "statements_used": int(u), "distinct_pairs": int(cooccurrence.nnz)}
    return matrix, 2 * pairs.num_pairs, "cpu", extra
