"""Train inst2vec embeddings on a corpus of sources or IR files: what ``ncc embed`` runs.

The pipeline (Ben-Nun et al., NeurIPS 2018, https://arxiv.org/abs/1806.07336): sources are compiled
through the cached batch compiler; every module is normalised and turned into its contextual flow
graph, whose context pairs are streamed to disk (:mod:`ncc.embeddings.corpus`); a vocabulary is fitted
on the statement counts (or NCC's published one is used); skip-gram is trained on the pairs
(:mod:`ncc.embeddings.skipgram`). Bad inputs are listed in the result and never stop the run.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ncc import plural
from ncc.errors import NccError
from ncc.fileio import atomic_write, prepare_output_folder
from ncc.frontend.batch import BatchFailure, compile_batch
from ncc.frontend.compile import SOURCE_EXTENSIONS
from ncc.frontend.inputs import gather_inputs
from ncc.frontend.load import IR_EXTENSIONS
from ncc.embeddings.corpus import PairSource, PairStore, iter_module_contexts
from ncc.embeddings.skipgram import Embeddings, SkipGram
from ncc.embeddings.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

REPORT_FILE = "report.json"


@dataclass
class EmbedResult:
    """What :func:`embed` produced.

    Attributes:
        embeddings: the trained embeddings.
        report: the training report (also written as ``report.json``).
        failures: inputs that gave no module, with the reason.
        output_dir: where the files were written, if anywhere.
    """

    embeddings: Embeddings
    report: dict
    failures: list[BatchFailure] = field(default_factory=list)
    output_dir: Path | None = None

    @property
    def hint(self) -> str | None:
        """What to do about a low coverage of the published vocabulary on opaque-pointer IR, or None."""
        vocabulary = self.report["vocabulary"]
        share = vocabulary.get("opaque_pointer_share", 0.0)
        if vocabulary["source"] != "published" or share == 0.0:
            return None
        return (f"{100 * share:.0f} % of the statements use opaque pointers (ptr), which the published vocabulary "
                f"never does: it expects typed-pointer IR, from clang <= 14. Compile with --clang clang-14 (or "
                f"$NCC_CLANG), or fit a vocabulary on the corpus (--vocabulary fit).")

    def summary(self) -> str:
        corpus, vocabulary = self.report["corpus"], self.report["vocabulary"]
        return (f"{plural(corpus['modules'], 'module')}, {plural(corpus['statements'], 'statement')}, "
                f"{plural(corpus['pairs'], 'pair')}; "
                f"vocabulary {vocabulary['size']} ({100 * vocabulary['coverage']:.1f} % coverage); "
                f"{len(self.failures)} failed; {self.report['time']['total_s']:.1f} s")


_OPAQUE_POINTER = re.compile(r"(?:^|[\s(,])ptr(?:[\s),]|$)")


def opaque_pointer_share(counts: Mapping[str, int]) -> float:
    """The share of statement occurrences that name the opaque ``ptr`` type (IR of clang >= 15)."""
    total = sum(counts.values())
    opaque = sum(count for statement, count in counts.items() if _OPAQUE_POINTER.search(statement))
    return opaque / total if total else 0.0


def corpus_ir_files(inputs: Iterable[str | os.PathLike], workers: int = 1, clang: str | None = None,
                    opt_level: int | str = 0, flags: Sequence[str] = (), progress: bool = True,
                    ) -> tuple[list[tuple[str, str]], list[BatchFailure]]:
    """Expand inputs and compile the sources among them (cached).

    Returns:
        ``(label, IR file)`` for every input that has IR, in input order, and the failures (missing
        paths, folders without a source or IR file, and sources that did not compile among them).
    """
    found = gather_inputs(inputs, (*SOURCE_EXTENSIONS, *IR_EXTENSIONS))
    files = found.paths
    sources = [f for f in files if f.suffix.lower() in SOURCE_EXTENSIONS]
    ir_for = {str(f): str(f) for f in files if f.suffix.lower() not in SOURCE_EXTENSIONS}
    failures = list(found.problems)
    if sources:
        compiled = compile_batch(sources, opt_level=opt_level, flags=flags, workers=workers, clang=clang,
                                 progress=progress)
        for entry in compiled.entries:
            ir_for[str(entry.path)] = str(entry.ir_path)
        failures.extend(compiled.failures)
    return [(str(f), ir_for[str(f)]) for f in files if str(f) in ir_for], failures


def embed(inputs: Iterable[str | os.PathLike], output_dir: str | os.PathLike | None = None, *,
          context_size: int = 2, dim: int = 200, epochs: int = 5, negative: int = 5, min_count: int = 1,
          subsample: float = 1e-3, vocabulary: str | Vocabulary = "fit", backend: str = "dense",
          workers: int = 1, clang: str | None = None, opt_level: int | str = 0, flags: Sequence[str] = (),
          memory: bool = True, seed: int = 0, device: str | None = None, progress: bool = True,
          steps: int = 300, dense_learning_rate: float = 0.005,
          ir_files: Sequence[tuple[str, str]] | None = None) -> EmbedResult:
    """Train inst2vec embeddings on sources, IR files or folders of them.

    Args:
        inputs: files, directories (searched recursively) or glob patterns; C/C++/OpenCL sources are
            compiled (cached), ``.ll``/``.bc`` files read as they are.
        output_dir: where to write ``vocabulary.json``, ``embeddings.npy``, ``embeddings.json`` and
            ``report.json`` (nothing is written when None).
        context_size: XFG context distance N (1..3; inst2vec: 2).
        dim, epochs, negative, seed, device, steps, dense_learning_rate: skip-gram settings (see
            :class:`SkipGram`; ``epochs`` for gensim and torch, ``steps`` and ``dense_learning_rate`` for dense).
        min_count, subsample: vocabulary settings (see :class:`Vocabulary`); ``min_count`` only applies
            to a fitted vocabulary.
        vocabulary: ``"fit"`` (fit on this corpus), ``"published"`` (NCC's 8,565 statements) or a
            fitted :class:`Vocabulary`.
        backend: ``"dense"`` (default), ``"gensim"`` or ``"torch"`` (see :mod:`ncc.embeddings.skipgram`).
        workers: processes for compiling and XFG extraction, threads for training.
        clang, opt_level, flags: how to compile sources.
        memory: XFG memory edges (see :func:`ncc.embeddings.xfg.build_xfg`).
        progress: show progress bars.
        ir_files: ``(label, IR file)`` pairs to use instead of ``inputs`` (already compiled).

    Returns:
        EmbedResult with the embeddings, the report and the failures.

    Raises:
        NccError: no input gave a module with statements.
    """
    started = time.perf_counter()
    parent = prepare_output_folder(output_dir) if output_dir is not None else None
    if ir_files is None:
        ir_files, failures = corpus_ir_files(inputs, workers=workers, clang=clang, opt_level=opt_level,
                                             flags=flags, progress=progress)
    else:
        ir_files, failures = list(ir_files), []
    compiled_at = time.perf_counter()
    with PairStore.temporary_store(parent) as store:
        for label, context, reason in iter_module_contexts(ir_files, context_size, memory, workers, progress):
            if context is None:
                failures.append(BatchFailure(label, reason))
            else:
                store.add(context)
        store.flush()
        extracted_at = time.perf_counter()
        if store.num_statement_nodes == 0:
            reasons = [f.reason if f.path in f.reason else f"{f.path}: {f.reason}" for f in failures]
            more = f"; and {len(reasons) - 3} more" if len(reasons) > 3 else ""
            raise NccError("no statements in the corpus" + (f": {'; '.join(reasons[:3])}{more}" if reasons else ""))
        counts = store.statement_counts()
        if isinstance(vocabulary, Vocabulary):
            fitted, vocabulary_source = vocabulary.with_counts(counts), "given"
        elif vocabulary == "published":
            fitted, vocabulary_source = Vocabulary.published(subsample=subsample).with_counts(counts), "published"
        elif vocabulary == "fit":
            fitted, vocabulary_source = Vocabulary(min_count, subsample).fit_counts(counts), "fit"
        else:
            raise NccError(f"unknown vocabulary {vocabulary!r} (choose fit or published)")
        table = fitted.transform(store.statements).astype(np.int32)
        model = SkipGram(dim=dim, epochs=epochs, negative=negative, backend=backend, workers=workers, seed=seed,
                         device=device, progress=progress, steps=steps, dense_learning_rate=dense_learning_rate)
        model.fit(PairSource.from_store(store, table), fitted)
        trained_at = time.perf_counter()
        num_modules, num_nodes, num_pairs = store.num_modules, store.num_statement_nodes, store.num_pairs
    seen = fitted.counts_ > 0
    seen[fitted.unknown_id] = False
    report = {
        "corpus": {"inputs": len(ir_files) + sum(1 for f in failures if f.path not in dict(ir_files)),
                   "modules": num_modules, "failed": len(failures), "statements": num_nodes,
                   "distinct_statements": len(counts), "pairs": num_pairs, "directed_pairs": 2 * num_pairs},
        "vocabulary": {"source": vocabulary_source, "size": len(fitted), "coverage": round(fitted.coverage(counts), 6),
                       "opaque_pointer_share": round(opaque_pointer_share(counts), 6),
                       "tokens_in_corpus": int(seen.sum()), "unknown_occurrences": int(fitted.counts_[fitted.unknown_id])},
        "training": model.stats_,
        "time": {"compile_s": round(compiled_at - started, 3), "xfg_s": round(extracted_at - compiled_at, 3),
                 "train_s": round(trained_at - extracted_at, 3), "total_s": round(time.perf_counter() - started, 3),
                 "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)},
        "settings": {"context_size": context_size, "dim": dim, "epochs": epochs, "negative": negative,
                     "min_count": min_count, "subsample": subsample, "vocabulary": vocabulary_source,
                     "backend": backend, "workers": workers, "seed": seed, "memory_edges": memory,
                     "steps": steps, "dense_learning_rate": dense_learning_rate,
                     "opt_level": str(opt_level), "clang": clang or "ziglang", "python": platform.python_version()},
        "failures": [{"path": f.path, "reason": f.reason} for f in failures],
    }
    embeddings = Embeddings(fitted, model.embeddings_.matrix, {"report": {k: report[k] for k in
                                                                          ("corpus", "vocabulary", "settings")}})
    result = EmbedResult(embeddings, report, failures, parent)
    if parent is not None:
        embeddings.save(parent)
        atomic_write(parent / REPORT_FILE, json.dumps(report, indent=1))
    logger.info("embed: %s", result.summary())
    return result
