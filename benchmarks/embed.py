"""Train inst2vec on the real corpus and report its size, speed, memory and analogy score.

The corpus: POJ-104 programs (all, or ``--limit`` of them, a seeded sample) with the ``poj104`` dialect,
the devmap kernels (``devmap/ncc/kernels_cl``, one compile per distinct (kernel, dataset) of the CSVs)
and the 17 thread-coarsening kernels, compiled with a typed-pointer clang (Debian's clang-14 by default,
``$NCC_CLANG`` or ``--clang``) so statements look like those of NCC's published vocabulary, which is the
vocabulary trained here. Compiles go through ncc's IR cache, so a second run times the training alone.

The corpus is compiled once per ``--variants`` entry (default: -O0, -O2 and -O2 -ffast-math; NCC's
vocabulary came from corpora at several optimisation levels, and -O0 alone holds few of the analogy
statements) and all compilations are trained on together with the dense skip-gram backend.

Reported: modules, statement nodes, context pairs, training pairs per second, peak memory (RSS of this
process and its children), wall times (compile per variant, XFG extraction, training), vocabulary
coverage, the analogy questions answerable from the corpus, the add-vs-fdiv separation
(:func:`ncc.embeddings.opcode_separation`), and the analogy score per type under NCC's protocol (top 5)
and the strict 3CosAdd one, beside the published embedding's 19.3 % (413 / 2,145), and under NCC's protocol
on the answerable questions alone (those whose four statements all occur in the corpus).

Usage: ``NCC_DATA=../shared/data python benchmarks/embed.py [--limit 10000] [--variants 0 2 2:-ffast-math]
[--backend dense] [--workers 2]``
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import logging
import random
import resource
import tarfile
import tempfile
import time
from pathlib import Path

from ncc.embeddings import (embed, evaluate_analogies, load_analogies, nearest_neighbours, opcode_separation,
                            plot_tsne)
from ncc.frontend.batch import compile_batch
from ncc.frontend.kernel_defines import devmap_kernel_flags, devmap_source_fix, threadcoarsening_kernel_flags
from ncc.paths import data_home

logger = logging.getLogger("embed")


#: NCC compiled its OpenCL kernels for the host (its IR has ``spir_kernel`` functions but address space 0
#: everywhere and plain ``@_Z13get_global_idj`` calls); ncc's default ``-target spir64`` gives
#: ``addrspace(1)`` pointers and ``spir_func`` calls, none of which is in the published vocabulary.
KERNEL_FLAGS = ("-target", "x86_64-linux-gnu")


def compile_corpus(limit: int | None, seed: int, workers: int, clang: str, extract_dir: Path,
                   opt_level: int | str = 0, flags: tuple[str, ...] = (),
                   kernel_flags: tuple[str, ...] = KERNEL_FLAGS):
    """(label, IR file) pairs of the corpus, and the number of sources that failed to compile.

    ``opt_level`` and ``flags`` apply to every source (POJ-104 and the kernels alike), ``kernel_flags``
    to the OpenCL kernels only.
    """
    kernel_flags = tuple(flags) + tuple(kernel_flags)
    ir_files, failed = [], 0
    coarsening = sorted((data_home() / "threadcoarsening" / "kernels_cl").glob("*.cl"))
    result = compile_batch(coarsening, workers=workers, clang=clang, progress=False, opt_level=opt_level,
                           flags=kernel_flags,
                           per_source_flags=lambda path: threadcoarsening_kernel_flags(path.stem))
    ir_files += [(e.path, str(e.ir_path)) for e in result.entries]
    failed += len(result.failures)

    folder = data_home() / "devmap" / "ncc" / "kernels_cl"
    existing = {path.name for path in folder.iterdir()}
    jobs = set()
    for platform in ("amd", "nvidia"):
        for row in csv.DictReader((data_home() / "devmap" / f"cgo17-{platform}.csv").open()):
            benchmark, dataset = row["benchmark"], row["dataset"]
            name = next((c for c in (f"{benchmark}_{dataset}.cl", f"{benchmark}.cl") if c in existing), None)
            if name is not None:
                jobs.add((dataset, benchmark, name))
    for dataset in sorted({d for d, _, _ in jobs}):
        members = {folder / name: benchmark for d, benchmark, name in jobs if d == dataset}
        result = compile_batch(sorted(members), language="opencl", workers=workers, clang=clang, progress=False,
                               opt_level=opt_level, flags=kernel_flags,
                               per_source_flags=lambda p, d=dataset, m=members: devmap_kernel_flags(m[p], d),
                               source_transform=lambda p, text, m=members: devmap_source_fix(m[p], text))
        ir_files += [(f"{e.path}@{dataset}", str(e.ir_path)) for e in result.entries]
        failed += len(result.failures)

    poj = data_home() / "poj104"
    with gzip.open(poj / "manifest.csv.gz", "rt") as handle:
        manifest = list(csv.DictReader(handle))
    chosen = manifest if limit is None else random.Random(seed).sample(manifest, min(limit, len(manifest)))
    wanted = {f"poj104/{row['path']}" for row in chosen}
    with tarfile.open(poj / "poj104_codexglue.tar.gz") as archive:
        members = [member for member in archive.getmembers() if member.name in wanted]
        archive.extractall(extract_dir, members=members, filter="data")
    result = compile_batch(sorted(Path(extract_dir, name) for name in wanted), dialect="poj104", workers=workers,
                           clang=clang, opt_level=opt_level, flags=flags)
    ir_files += [(e.path, str(e.ir_path)) for e in result.entries]
    failed += len(result.failures)
    return ir_files, failed


def parse_variant(text: str) -> tuple[str, tuple[str, ...]]:
    """``"2"`` -> ("2", ()); ``"2:-ffast-math"`` -> ("2", ("-ffast-math",)) (flags split on spaces)."""
    level, _, flags = text.partition(":")
    return level, tuple(flags.split())


def answerable(embeddings, questions) -> list:
    """Questions whose four statements all occur in the training corpus (the rest cannot be learnt)."""
    counts, index = embeddings.vocabulary.counts_, embeddings.vocabulary.index_
    return [q for q in questions if all(counts[index[s]] > 0 for s in q.statements)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="POJ-104 programs to use (default: all)")
    parser.add_argument("--variants", nargs="+", default=["0", "2", "2:-ffast-math"],
                        help="compilations of the corpus to train on together, LEVEL[:FLAGS] (default: -O0, -O2 "
                             "and -O2 -ffast-math)")
    parser.add_argument("--backend", choices=["dense", "gensim", "torch"], default="dense")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5, help="gensim / torch epochs")
    parser.add_argument("--steps", type=int, default=300, help="dense backend steps")
    parser.add_argument("--learning-rate", type=float, default=0.005, help="dense backend learning rate")
    parser.add_argument("--context-size", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="leave out the XFG memory edges")
    parser.add_argument("--subsample", type=float, default=1e-3)
    parser.add_argument("--clang", default=None, help="typed-pointer clang (default $NCC_CLANG or clang-14)")
    parser.add_argument("--seed", type=int, default=104, help="seeds the POJ-104 sample")
    parser.add_argument("--train-seed", type=int, default=0, help="seeds skip-gram")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "embed")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    import os

    clang = arguments.clang or os.environ.get("NCC_CLANG") or "clang-14"
    started = time.perf_counter()
    ir_files, compile_failed, compile_s = [], 0, {}
    with tempfile.TemporaryDirectory(prefix="ncc-poj104-") as extract_dir:
        for variant in arguments.variants:
            level, flags = parse_variant(variant)
            begun = time.perf_counter()
            files, failed = compile_corpus(arguments.limit, arguments.seed, arguments.workers, clang,
                                           Path(extract_dir), opt_level=level, flags=flags)
            compile_s[variant] = round(time.perf_counter() - begun, 1)
            ir_files += [(f"-O{level}{''.join(flags)}:{label}", path) for label, path in files]
            compile_failed += failed
        compiled_at = time.perf_counter()
        result = embed([], arguments.output, ir_files=ir_files, vocabulary="published", backend=arguments.backend,
                       workers=arguments.workers, context_size=arguments.context_size, epochs=arguments.epochs,
                       subsample=arguments.subsample, clang=clang, memory=not arguments.no_memory,
                       steps=arguments.steps, dense_learning_rate=arguments.learning_rate, seed=arguments.train_seed)
    trained_at = time.perf_counter()
    ncc = evaluate_analogies(result.embeddings, protocol="ncc")
    strict = evaluate_analogies(result.embeddings, protocol="3cosadd")
    learnable = answerable(result.embeddings, load_analogies())
    learnable_ncc = evaluate_analogies(result.embeddings, learnable, protocol="ncc")
    plot_tsne(result.embeddings, arguments.output / "tsne.png")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = result.report
    passes = 1 if arguments.backend == "dense" else arguments.epochs
    figures = {
        "modules": report["corpus"]["modules"], "compile_failed": compile_failed,
        "embed_failed": report["corpus"]["failed"], "statements": report["corpus"]["statements"],
        "pairs": report["corpus"]["pairs"], "directed_pairs_per_epoch": report["corpus"]["directed_pairs"],
        "trained_pairs": report["training"]["trained_pairs"],
        "pairs_per_second": report["training"]["pairs_per_second"],
        "directed_pairs_per_second_all_epochs": round(report["corpus"]["directed_pairs"] * passes
                                                      / report["training"]["seconds"], 1),
        "coverage": report["vocabulary"]["coverage"], "tokens_in_corpus": report["vocabulary"]["tokens_in_corpus"],
        "answerable_questions": len(learnable),
        "add_fdiv_separation": round(opcode_separation(result.embeddings, "add", "fdiv"), 4),
        "peak_rss_mb": report["time"]["peak_rss_mb"], "peak_rss_children_mb": round(children, 1),
        "compile_s": round(compiled_at - started, 1), "compile_s_per_variant": compile_s,
        "xfg_s": report["time"]["xfg_s"], "train_s": report["time"]["train_s"],
        "embed_wall_s": round(trained_at - compiled_at, 1),
        "analogies_ncc_top5": ncc.to_dict(), "analogies_3cosadd": strict.to_dict(),
        "analogies_ncc_top5_answerable": learnable_ncc.to_dict(),
        # embed() saw compiled IR, so its own opt_level is moot: the variants say how the corpus was compiled.
        "settings": {**{k: v for k, v in report["settings"].items() if k != "opt_level"},
                     "limit": arguments.limit, "variants": arguments.variants,
                     "backend": arguments.backend, "device": report["training"]["device"]},
        "example_neighbours": nearest_neighbours(result.embeddings, "<%ID> = add nsw i32 <%ID>, <INT>", 5),
    }
    (arguments.output / "benchmark.json").write_text(json.dumps(figures, indent=1))
    logger.info("%s", json.dumps({k: v for k, v in figures.items() if not k.startswith("analogies")}, indent=1))
    logger.info("NCC protocol (d in top 5):\n%s", ncc.table())
    logger.info("3CosAdd (nearest other than a, b, c):\n%s", strict.table())
    logger.info("NCC protocol, questions whose four statements occur in the corpus:\n%s", learnable_ncc.table())


if __name__ == "__main__":
    main()
