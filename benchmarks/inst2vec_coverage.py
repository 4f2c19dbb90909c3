"""How much of NCC's own IR our inst2vec normalisation maps into NCC's published vocabulary.

Run (from the repository root)::

    export NCC_DATA=../shared/data
    .venv/bin/python benchmarks/inst2vec_coverage.py

Options::

    --extra NAME=DIR      another corpus part: every .ll under DIR (repeatable)
    --top N               how many misses to list (default 30)
    --output FILE         JSON results (default benchmarks/results/inst2vec_coverage.json)

Corpus parts:

* ``devmap``: NCC's pre-compiled IR of the device-mapping kernels (``devmap/ncc/kernels_ir.tar.gz``,
  685 files, Apple LLVM 9.1, typed pointers) -- NCC built its vocabulary partly from this IR;
* ``coarsening``: the thread-coarsening kernels' IR (``threadcoarsening/kernels_ir/``, 17 files).

For every instruction node of every file's program graph the statement is normalised
(:func:`ncc.embeddings.normalise.module_statements`) and looked up in the published vocabulary
(``inst2vec/vocabulary.json.gz``). Reported per part: coverage of statement occurrences, coverage of
distinct statements, the top misses with their counts and the closest vocabulary statement of the same
opcode, how many of the missed occurrences are statements seen at most ``k`` times in the corpus, and how
many have a vocabulary statement of the same *skeleton* (literals, identifiers, array lengths, alignment,
``tail``/``nonnull``/``dereferenceable`` abstracted): such a miss is written in the vocabulary's format
but is a variant the vocabulary lacks -- the published vocabulary was cut at a minimum count over NCC's
whole training corpus, so rare variants miss legitimately. Also the speed of
:func:`normalise` alone (statements per second, struct inlining included, graph building excluded).

This is a script, not part of the package, and no test imports it.
"""

from __future__ import annotations

import argparse
import collections
import difflib
import gzip
import json
import re
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ncc.embeddings.normalise import module_statements, normalise  # noqa: E402
from ncc.graph.ir_parser import struct_types  # noqa: E402
from ncc.paths import data_home  # noqa: E402


def devmap_files(data: Path):
    with tarfile.open(data / "devmap" / "ncc" / "kernels_ir.tar.gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.isfile() and member.name.endswith(".ll"):
                yield member.name, tar.extractfile(member).read().decode()


def directory_files(folder: Path):
    for path in sorted(folder.rglob("*.ll")):
        yield str(path.relative_to(folder)), path.read_text()


def opcode_of(statement: str) -> str:
    words = statement.split()
    if len(words) > 2 and words[1] == "=":
        words = words[2:]
    if words and words[0] in ("tail", "musttail", "notail") and len(words) > 1:
        return words[1]
    return words[0] if words else ""


_SKELETON = [(re.compile(r'<(?:%ID|@ID|INT|FLOAT)>|\b-?\d+\b(?! x )'), "X"), (re.compile(r'[\[<]\d+ x '), "[N x "),
             (re.compile(r'\b(?:tail |nonnull |noalias |dereferenceable\(\d+\) |volatile )'), ""),
             (re.compile(r', align \d+'), "")]


def skeleton(statement: str) -> str:
    """A statement with every literal, identifier, array or vector length, alignment and the usual call
    and pointer attributes abstracted: two statements with one skeleton differ only in such details."""
    for pattern, repl in _SKELETON:
        statement = pattern.sub(repl, statement)
    return statement


def closest(statement: str, candidates: list[str]) -> str | None:
    """The most similar vocabulary statement (difflib), among candidates of a similar length."""
    n = len(statement)
    pool = [c for c in candidates if 0.7 * n <= len(c) <= 1.3 * n] or candidates
    best, best_ratio = None, -1.0
    matcher = difflib.SequenceMatcher(b=statement, autojunk=False)
    for c in pool:
        matcher.set_seq1(c)
        if matcher.real_quick_ratio() <= best_ratio or matcher.quick_ratio() <= best_ratio:
            continue
        r = matcher.ratio()
        if r > best_ratio:
            best, best_ratio = c, r
    return best


def measure(name: str, files, vocab: set[str], by_opcode: dict[str, list[str]], top: int,
            vocab_skeletons: set[str]) -> tuple[dict, list]:
    counts: collections.Counter = collections.Counter()
    failed = []
    samples = []  # (full_text, types) for the speed test
    n_files = 0
    for fname, text in files:
        n_files += 1
        try:
            graph, statements = module_statements(text)
        except Exception as e:  # a file our builder cannot read is reported, not fatal
            failed.append((fname, f"{type(e).__name__}: {e}"[:200]))
            continue
        types = struct_types(text)
        for i, s in enumerate(statements):
            if s is not None:
                counts[s] += 1
                samples.append((graph.node_full_text[i], types))
    total = sum(counts.values())
    hit = sum(c for s, c in counts.items() if s in vocab)
    misses = [(s, c) for s, c in counts.most_common() if s not in vocab]
    rare = {k: sum(c for s, c in misses if c <= k) for k in (1, 2, 5, 10)}
    top_misses = []
    for s, c in misses[:top]:
        top_misses.append({"statement": s, "count": c, "closest": closest(s, by_opcode.get(opcode_of(s), []))})
    variant = sum(c for s, c in misses if skeleton(s) in vocab_skeletons)
    missed_by_opcode = collections.Counter()
    for s, c in misses:
        missed_by_opcode[opcode_of(s)] += c
    result = {
        "part": name, "files": n_files, "files_failed": failed,
        "occurrences": total, "occurrences_in_vocabulary": hit,
        "occurrence_coverage": hit / total if total else None,
        "distinct": len(counts), "distinct_in_vocabulary": sum(1 for s in counts if s in vocab),
        "distinct_coverage": (sum(1 for s in counts if s in vocab) / len(counts)) if counts else None,
        "missed_occurrences_of_statements_seen_at_most_k_times": rare,
        "missed_occurrences_by_opcode": dict(missed_by_opcode.most_common()),
        "missed_occurrences_with_a_vocabulary_skeleton": variant,
        "top_misses": top_misses,
    }
    return result, samples


def speed(samples, repeats: int = 3) -> dict:
    """Statements per second of :func:`normalise` over ``samples`` (one struct mapping per module)."""
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        for text, types in samples:
            normalise(text, types)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return {"statements": len(samples), "seconds": best, "statements_per_second": len(samples) / best}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "inst2vec_coverage.json")
    args = parser.parse_args(argv)

    data = data_home()
    vocab_list = json.loads(gzip.open(data / "inst2vec" / "vocabulary.json.gz").read())
    vocab = set(vocab_list)
    by_opcode: dict[str, list[str]] = collections.defaultdict(list)
    for s in vocab_list:
        by_opcode[opcode_of(s)].append(s)

    vocab_skeletons = {skeleton(s) for s in vocab_list}

    parts = [("devmap", devmap_files(data)),
             ("coarsening", directory_files(data / "threadcoarsening" / "kernels_ir"))]
    for spec in args.extra:
        name, _, folder = spec.partition("=")
        parts.append((name, directory_files(Path(folder))))

    results, all_samples = [], []
    for name, files in parts:
        result, samples = measure(name, files, vocab, by_opcode, args.top, vocab_skeletons)
        results.append(result)
        all_samples.extend(samples)
    speed_result = speed(all_samples)

    print("# inst2vec normalisation: coverage of the published vocabulary (8,565 statements)\n")
    print("| part | files | statements | in vocabulary | occurrence coverage | distinct | distinct in vocab | distinct coverage |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['part']} | {r['files']} | {r['occurrences']} | {r['occurrences_in_vocabulary']} | "
              f"{100 * r['occurrence_coverage']:.2f} % | {r['distinct']} | {r['distinct_in_vocabulary']} | "
              f"{100 * r['distinct_coverage']:.2f} % |")
    for r in results:
        if r["files_failed"]:
            print(f"\n{r['part']}: {len(r['files_failed'])} files failed, first: {r['files_failed'][0]}")
        missed = r["occurrences"] - r["occurrences_in_vocabulary"]
        rare = r["missed_occurrences_of_statements_seen_at_most_k_times"]
        print(f"\n## {r['part']}: top {len(r['top_misses'])} misses ({missed} missed occurrences; "
              f"of them from statements seen <=1x: {rare[1]}, <=2x: {rare[2]}, <=5x: {rare[5]}, <=10x: {rare[10]})\n")
        print(f"missed occurrences whose skeleton (literals, identifiers, lengths, alignment, tail/nonnull/"
              f"dereferenceable abstracted) is in the vocabulary: {r['missed_occurrences_with_a_vocabulary_skeleton']}"
              f" of {missed}")
        print("missed occurrences by opcode:", ", ".join(f"{k} {v}" for k, v in
                                                     list(r["missed_occurrences_by_opcode"].items())[:12]))
        print()
        for m in r["top_misses"]:
            print(f"{m['count']:6d}  {m['statement']!r}")
            print(f"        closest: {m['closest']!r}")
    print(f"\nnormalise speed: {speed_result['statements_per_second']:,.0f} statements/s "
          f"({speed_result['statements']} statements, best of 3)")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"parts": results, "speed": speed_result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
