"""Algorithm classification on POJ-104 (Mou et al., AAAI 2016; NCC's and ProGraML's ``classifyapp``).

Data: ``poj104/poj104_codexglue.tar.gz`` and ``poj104/manifest.csv.gz`` under ``$NCC_DATA`` (52,000
student C/C++ programs, 104 classes of 500; see ``datasets/poj104/README.md``). Where they are absent, they are rebuilt from
the public origin (:data:`ORIGIN`, pinned in ``datasets/poj104/pins.json``) and kept only if the programs
match :data:`CONTENT_SHA256`. The archive is unpacked once into ncc's cache. Programs are compiled
with the ``poj104`` dialect (NCC's prelude header, ``void main`` rewritten) through the batch compiler's IR
cache: parallel, resumable (a killed run keeps every finished compile) and free the second time. Programs
that do not compile are left out of every split and listed, with clang's reason, in
``compile-failures-<key>.csv`` beside the processed data.

Split (:data:`SPLIT_FILE`, shipped with ncc so everyone evaluates on the same programs): within each
class, a permutation seeded by ``(SPLIT_SEED, label)`` puts 300 programs in ``train``, 100 in ``val`` and
100 in ``test`` (3 : 1 : 1, as NCC). Protocols:

* ``full``: all of it (31,200 / 10,400 / 10,400 programs before compile failures).
* ``quick``: the first 60 / 20 / 20 of each class's train / val / test programs (6,240 / 2,080 / 2,080),
  a subset of the full split, sized for a 2-core CPU.

``classes=K`` keeps labels 1..K only (notebook tests). ``opt_levels="0,2"`` compiles every program at
each level (augmentation as in NCC and ProGraML); all variants of a program stay in its split.

Models: ``ggnn`` (ProGraML's) reads the program graph with ProGraML's POJ-104 node features, inst2vec
statement ids whose embeddings are trained, without labels, on the training split's IR and fine-tuned
with the model; ``rgine`` reads the same; ``lstm`` (NCC's model) reads the inst2vec statement embeddings,
frozen. ``data.features`` changes what a model reads. ``bag`` (:func:`bag_of_nodes`) is a logistic
regression on the counts of node texts, a code-reading baseline with no message passing;
``bag-statements`` the same on inst2vec statements.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

from ncc.download import pins
from ncc.errors import DatasetError, NccError
from ncc.fileio import atomic_write, extract_members
from ncc.paths import cache_home, data_home
from ncc.processes import process_pool
from ncc.training.config import ConfigError
from ncc.training.task import SupervisedTask, TableRequest, TableResult, TaskData

if TYPE_CHECKING:  # pragma: no cover
    from ncc.graph import ProgramGraph
    from ncc.training.config import TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["Program", "load_programs", "rebuild_from_origin", "content_digest", "ORIGIN", "CONTENT_SHA256",
           "source_folder", "make_split", "load_split", "write_split", "select_programs", "ClassifyappOptions",
           "ClassifyappTask", "CompiledPrograms", "compile_programs",
           "build_graphs", "ModuleStatementIds", "bag_of_nodes", "train_row", "run_folder", "split_outputs",
           "reproduce_classifyapp", "MODELS", "PUBLISHED", "SPLIT_FILE", "SPLIT_SEED", "PROTOCOLS"]

CLASSES = 104
PER_CLASS = 500
SPLITS = ("train", "val", "test")
#: Programs per class in each split: the full protocol and the quick one.
SPLIT_SIZES = {"full": (300, 100, 100), "quick": (60, 20, 20)}
PROTOCOLS = tuple(SPLIT_SIZES)
SPLIT_SEED = 104
SPLIT_FILE = Path(__file__).with_name("data") / "poj104_split.csv.gz"

#: Published test accuracy (%) on POJ-104; ProGraML's table quotes the first three as errors.
PUBLISHED = {
    "TBCNN (Mou et al., 2016)": 94.0,
    "NCC inst2vec LSTM (Ben-Nun et al., 2018)": 94.83,
    "XFG (ProGraML ablation, 2021)": 95.71,
    "ProGraML GGNN (Cummins et al., 2021)": 96.62,
}
#: Row name -> what it reads.
MODELS = {
    "bag": "node-text counts (logistic regression)",
    "bag-statements": "inst2vec statement counts (logistic regression)",
    "lstm": "inst2vec statements (NCC's LSTM)",
    "ggnn": "program graph, inst2vec statements (ProGraML's GGNN)",
    "rgine": "program graph, inst2vec statements (ncc's relational GINE)",
}
NEURAL = ("lstm", "ggnn", "rgine")
#: The bag-of-features rows and the node features each counts (``data.features``).
BAGS = {"bag": "text", "bag-statements": "inst2vec"}


# ------------------------------------------------------------------------------------------------ data

@dataclass(frozen=True)
class Program:
    """One POJ-104 program: its class (1..104), its path inside the archive (``<label>/<n>.cpp``) and sha1."""

    label: int
    path: str
    sha1: str


_PINS = pins("poj104")
#: The public origin: GitHub's archive of guilhermeivo/dataset-poj-104 at the commit SOURCE.md names.
ORIGIN = _PINS["origin"]
#: sha256 of the 52,000 lines ``<label>/<n>.cpp <sha1 of the file>\n`` in (label, n) order: what a rebuild from
#: the origin must give (GitHub's archives are not byte-stable, so their contents are pinned instead).
CONTENT_SHA256 = _PINS["content_sha256"]
_DATA_FILES = ("manifest.csv.gz", "poj104_codexglue.tar.gz")


def _order(path: str) -> tuple[int, int]:
    label, name = path.split("/")
    return int(label), int(Path(name).stem)


def content_digest(files: Iterable[tuple[str, str]]) -> str:
    """sha256 over ``(path, sha1)`` pairs as :data:`CONTENT_SHA256` is computed."""
    text = "".join(f"{path} {sha1}\n" for path, sha1 in sorted(files, key=lambda item: _order(item[0])))
    return hashlib.sha256(text.encode()).hexdigest()


def _codexglue_split(label: int) -> str:
    return "train" if label <= 64 else "valid" if label <= 80 else "test"


def rebuild_from_origin(archive: str | Path, folder: str | Path, expected: str = CONTENT_SHA256) -> Path:
    """Write ``manifest.csv.gz`` and ``poj104_codexglue.tar.gz`` into ``folder`` from the origin's archive.

    As SOURCE.md describes: the ``codexglue/<label>/<n>.cpp`` files, where a label holds a file twice with
    identical bytes (labels 65 and 81) the lower number is kept. Nothing is written unless the programs'
    :func:`content_digest` equals ``expected``.

    Raises:
        DatasetError: the archive is unreadable or its programs differ from the pinned ones.
    """
    import re

    folder = Path(folder)
    pattern = re.compile(r"^[^/]+/codexglue/(\d+)/(\d+)\.cpp$")
    kept: dict[str, bytes] = {}
    try:
        with tarfile.open(archive) as tar:
            found = []
            for member in tar:
                match = pattern.match(member.name)
                if match and member.isfile():
                    found.append((int(match.group(1)), int(match.group(2)), tar.extractfile(member).read()))
    except (OSError, tarfile.TarError) as error:
        raise DatasetError(f"cannot read the POJ-104 archive: {error}", str(archive)) from None
    seen: set[tuple[int, bytes]] = set()
    for label, number, data in sorted(found, key=lambda item: item[:2]):
        digest = hashlib.sha1(data).digest()
        if (label, digest) not in seen:
            seen.add((label, digest))
            kept[f"{label}/{number}.cpp"] = data
    hashes = {path: hashlib.sha1(data).hexdigest() for path, data in kept.items()}
    if content_digest(hashes.items()) != expected:
        raise DatasetError(f"the archive's {len(kept)} programs are not the pinned POJ-104 programs "
                           f"(content sha256 {content_digest(hashes.items())}, expected {expected})", str(archive))
    manifest = io.StringIO()
    writer = csv.writer(manifest, lineterminator="\n")
    writer.writerow(["label", "path", "bytes", "sha1", "codexglue_split"])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(kept, key=_order):
            label = int(path.split("/")[0])
            writer.writerow([label, path, len(kept[path]), hashes[path], _codexglue_split(label)])
            info = tarfile.TarInfo(f"poj104/{path}")
            info.size, info.mtime = len(kept[path]), 1577836800
            tar.addfile(info, io.BytesIO(kept[path]))
    atomic_write(folder / "poj104_codexglue.tar.gz", buffer.getvalue(), "wb")
    atomic_write(folder / "manifest.csv.gz", gzip.compress(manifest.getvalue().encode(), mtime=0), "wb")
    return folder


def _poj_folder(root: str | Path | None) -> Path:
    """The data set's folder; without ``root`` and without the files, they are rebuilt from :data:`ORIGIN`."""
    folder = Path(root) if root is not None else data_home() / "poj104"
    if all((folder / name).is_file() for name in _DATA_FILES):
        return folder
    if root is None:
        import fcntl
        import urllib.request

        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".download.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not all((folder / name).is_file() for name in _DATA_FILES):
                logger.info("downloading POJ-104 from %s", ORIGIN)
                with tempfile.NamedTemporaryFile(dir=folder, suffix=".tar.gz") as scratch:
                    try:
                        with urllib.request.urlopen(ORIGIN, timeout=300) as response:
                            shutil.copyfileobj(response, scratch)
                    except OSError as error:
                        raise DatasetError(f"POJ-104 is not in $NCC_DATA/poj104 and cannot be downloaded from "
                                           f"{ORIGIN}: {error}", str(folder)) from None
                    scratch.flush()
                    rebuild_from_origin(scratch.name, folder)
        return folder
    missing = next(name for name in _DATA_FILES if not (folder / name).is_file())
    raise DatasetError(f"POJ-104 is missing {missing} (see the data set's SOURCE.md for its origin)",
                       str(folder / missing))


def load_programs(root: str | Path | None = None) -> list[Program]:
    """The 52,000 programs of the manifest, in its order (by label, then file number)."""
    path = _poj_folder(root) / "manifest.csv.gz"
    with gzip.open(path, "rt", newline="") as handle:
        programs = [Program(int(row["label"]), row["path"], row["sha1"]) for row in csv.DictReader(handle)]
    if not programs:
        raise DatasetError("the manifest lists no programs", str(path))
    return programs


def source_folder(root: str | Path | None = None, cache: str | Path | None = None) -> Path:
    """The unpacked archive (``<folder>/<label>/<n>.cpp``), unpacked once into the cache.

    The folder is named by the archive's content digest (a fresh copy of the same archive reuses it) and
    appears whole or not at all: it is unpacked next to its final place and renamed, under a file lock, so
    processes started together unpack it once and none removes files another is reading.
    """
    import fcntl

    archive = _poj_folder(root) / "poj104_codexglue.tar.gz"
    base = (Path(cache) if cache is not None else cache_home()) / "poj104"
    try:
        with open(archive, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    except OSError as error:
        raise DatasetError(f"cannot read the POJ-104 archive: {error}", str(archive)) from None
    folder = base / f"sources-{digest[:16]}"
    _remove_legacy_sources(base)
    if (folder / ".complete").is_file():
        return folder
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".unpack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / ".complete").is_file():  # another process unpacked it while this one waited
            return folder
        scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=base))
        try:
            with tarfile.open(archive) as tar:
                members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith("poj104/")
                           and ".." not in Path(m.name).parts]
                extract_members(tar, scratch, members)
            (scratch / "poj104" / ".complete").write_text("")
            if folder.exists():  # left half-made by an interrupted older version: nobody reads it
                shutil.rmtree(folder)
            os.replace(scratch / "poj104", folder)
        except (OSError, tarfile.TarError) as error:
            raise DatasetError(f"cannot unpack POJ-104: {error}", str(archive)) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _remove_legacy_sources(base: Path) -> None:
    """Remove the folders earlier ncc versions unpacked into, named by the archive's size and mtime
    (``sources-<size>-<mtime>``, 206 MB each, one per copy of the archive); nothing reads them now."""
    for old in base.glob("sources-*-*"):
        if re.fullmatch(r"sources-\d+-\d+", old.name) and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def make_split(programs: Sequence[Program], seed: int = SPLIT_SEED) -> dict[str, tuple[str, int]]:
    """path -> (split, rank): each class's programs in a permutation seeded by ``(seed, label)``.

    The first 300 of a class are ``train``, the next 100 ``val``, the last 100 ``test`` (3 : 1 : 1 of 500;
    for classes of another size the same fractions). ``rank`` is the position inside the class's part of
    that split, so the quick protocol takes ranks below 60 / 20 / 20.
    """
    by_label: dict[int, list[str]] = {}
    for program in programs:
        by_label.setdefault(program.label, []).append(program.path)
    split: dict[str, tuple[str, int]] = {}
    for label, paths in sorted(by_label.items()):
        order = np.random.default_rng([seed, label]).permutation(len(paths))
        ordered = np.asarray(sorted(paths))[order].tolist()
        train_end, val_end = round(len(paths) * 0.6), round(len(paths) * 0.8)
        for position, path in enumerate(ordered):
            if position < train_end:
                split[path] = ("train", position)
            elif position < val_end:
                split[path] = ("val", position - train_end)
            else:
                split[path] = ("test", position - val_end)
    return split


def write_split(split: dict[str, tuple[str, int]], path: str | Path) -> Path:
    """Write a split as gzipped CSV (``path,split,rank``), sorted by path, byte-stable (no gzip time stamp)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "split", "rank"])
    for name in sorted(split, key=_order):
        writer.writerow([name, *split[name]])
    data = gzip.compress(buffer.getvalue().encode(), mtime=0)
    return atomic_write(Path(path), data, "wb")


def load_split(path: str | Path = SPLIT_FILE) -> dict[str, tuple[str, int]]:
    """A split file written by :func:`write_split`.

    Raises:
        DatasetError: the file is missing or names a split other than train, val or test.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rt", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, EOFError) as error:
        raise DatasetError(f"cannot read the split file: {error}", str(path)) from None
    split = {}
    for row in rows:
        if row.get("split") not in SPLITS:
            raise DatasetError(f"unknown split {row.get('split')!r} for {row.get('path')!r}", str(path))
        split[row["path"]] = (row["split"], int(row["rank"]))
    return split


def select_programs(programs: Sequence[Program], protocol: str = "full", classes: int = CLASSES,
                    split: dict[str, tuple[str, int]] | None = None) -> dict[str, list[Program]]:
    """The programs of each split under a protocol, for labels 1..``classes``.

    Raises:
        DatasetError: a program of the manifest is not in the split file.
    """
    split = load_split() if split is None else split
    limits = dict(zip(SPLITS, SPLIT_SIZES[protocol]))
    chosen: dict[str, list[Program]] = {name: [] for name in SPLITS}
    for program in programs:
        if program.label > classes:
            continue
        if program.path not in split:
            raise DatasetError(f"{program.path} is not in the split file", str(SPLIT_FILE))
        name, rank = split[program.path]
        if rank < limits[name]:
            chosen[name].append(program)
    return chosen


def _sha(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class CompiledPrograms:
    """The compiled variants of a protocol's programs.

    Attributes:
        entries: split -> ``(program, opt level, IR file)`` of every variant that compiled.
        failures: ``(program path, opt level, reason)`` of every variant that did not.
        programs: how many programs were asked for.
        key: a digest of the IR files and labels of every split (the processed datasets' source key).
    """

    entries: dict[str, list[tuple[Program, str, Path]]]
    failures: list[tuple[str, str, str]]
    programs: int
    key: str

    @property
    def compiled_programs(self) -> int:
        """Programs with at least one variant that compiled."""
        return len({(p.path) for items in self.entries.values() for p, _, _ in items})

    def write_failures(self, path: str | Path) -> Path:
        """Write the failures as CSV (``path,opt_level,reason``), atomically."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "opt_level", "reason"])
        writer.writerows(self.failures)
        return atomic_write(Path(path), buffer.getvalue())

    def summary(self) -> str:
        done = self.compiled_programs
        return (f"{done:,} of {self.programs:,} programs compiled ({100 * done / max(1, self.programs):.2f} %), "
                f"{len(self.failures)} variant(s) failed")


def compile_programs(chosen: dict[str, list[Program]], opt_levels: Sequence[str] = ("0",),
                     workers: int | None = None, clang: Any = None, root: str | Path | None = None,
                     cache: str | Path | None = None, progress: bool = True) -> CompiledPrograms:
    """Compile every program of every split at each optimisation level (cached, resumable, parallel)."""
    from ncc.frontend import compile_batch

    folder = source_folder(root, cache)
    programs = [p for name in SPLITS for p in chosen[name]]
    entries: dict[str, list[tuple[Program, str, Path]]] = {name: [] for name in SPLITS}
    failures: list[tuple[str, str, str]] = []
    for level in opt_levels:
        result = compile_batch([folder / p.path for p in programs], dialect="poj104", opt_level=level,
                               workers=workers, clang=clang, progress=progress)
        by_path = {entry.path: entry for entry in result.entries}
        reasons = {failure.path: failure.reason for failure in result.failures}
        for name in SPLITS:
            for program in chosen[name]:
                where = str(folder / program.path)
                if where in by_path:
                    entries[name].append((program, str(level), Path(by_path[where].ir_path)))
                else:
                    failures.append((program.path, str(level), reasons.get(where, "not compiled")))
    key = _sha("ncc.classifyapp", {name: [(p.label, level, ir.name) for p, level, ir in items]
                                   for name, items in entries.items()})
    return CompiledPrograms(entries, failures, len(programs), key)


def _build_graph(job: tuple[str, str]) -> "ProgramGraph | str":
    from ncc.frontend import load
    from ncc.graph import build

    ir_path, name = job
    try:
        return build(load(ir_path), name=name)
    except NccError as error:
        return str(error)


def build_graphs(ir_files: Sequence[Path], workers: int | None = None, progress: bool = True,
                 desc: str = "graphs") -> list["ProgramGraph | str"]:
    """Program graphs of IR files, in order, built in ``workers`` processes; each graph is named by its IR file.

    An IR file the builder rejects gives its one-line reason (a ``str``) in place of the graph.
    """
    from tqdm import tqdm

    jobs = [(str(path), Path(path).stem) for path in ir_files]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    with tqdm(total=len(jobs), desc=desc, unit="graph", disable=not progress, leave=False) as bar:
        if workers == 1:
            graphs = []
            for job in jobs:
                graphs.append(_build_graph(job))
                bar.update(1)
            return graphs
        graphs = []
        with process_pool(workers) as pool:
            for graph in pool.map(_build_graph, jobs, chunksize=32):
                graphs.append(graph)
                bar.update(1)
        return graphs


class _CompiledSplit:
    """The examples of one split: graphs built (in parallel) when they are asked for, a chunk at a time."""

    #: IR files whose graphs are built together; processing holds at most one chunk's graphs.
    CHUNK = 2048

    def __init__(self, items: Sequence[tuple[Program, str, Path]], key: str, workers: int | None, progress: bool,
                 name: str):
        self.items = list(items)
        self.key = key
        self.workers = workers
        self.progress = progress
        self.name = name

    def iter_graphs(self) -> Iterator[tuple[tuple[Program, str, Path], "ProgramGraph"]]:
        """``(item, graph)`` of the split's IR files in order, built ``CHUNK`` at a time and not kept (those the
        builder rejects are logged and left out)."""
        chunks = range(0, len(self.items), self.CHUNK)
        for number, start in enumerate(chunks):
            part = self.items[start:start + self.CHUNK]
            desc = f"graphs {self.name}" + (f" {number + 1}/{len(chunks)}" if len(chunks) > 1 else "")
            built = build_graphs([ir for _, _, ir in part], self.workers, self.progress, desc=desc)
            for item, graph in zip(part, built):
                if isinstance(graph, str):
                    logger.warning("%s at -O%s: no graph: %s", item[0].path, item[1], graph)
                else:
                    yield item, graph

    def graphs(self) -> Iterator["ProgramGraph"]:
        """The graphs of the split's IR files (see :meth:`iter_graphs`)."""
        return (graph for _, graph in self.iter_graphs())

    def examples(self) -> Iterator:
        from ncc.training.datasets import Example

        for (program, level, _), graph in self.iter_graphs():
            yield Example(graph, program.label - 1, name=f"{program.path}@O{level}")


class ModuleStatementIds:
    """inst2vec statement ids per node, reading each graph's module (for struct types) from its IR file.

    Graphs built by :func:`build_graphs` are named by their IR file's stem, which is how the file is found.

    Args:
        embeddings: trained :class:`~ncc.embeddings.skipgram.Embeddings`.
        ir_files: every IR file whose graph will be transformed.
    """

    def __init__(self, embeddings: Any, ir_files: Sequence[Path]):
        self.embeddings = embeddings
        self._files = {Path(path).stem: Path(path) for path in ir_files}

    def __len__(self) -> int:
        return len(self.embeddings.feature_matrix())

    def transform(self, graph: "ProgramGraph") -> np.ndarray:
        from ncc.embeddings.normalise import module_statements
        from ncc.frontend import load

        if graph.module_name not in self._files:
            raise KeyError(f"no IR file for graph {graph.module_name!r}")
        _, statements = module_statements(load(self._files[graph.module_name]), graph)
        return self.embeddings.ids_for_graph(graph, statements)

    def digest(self) -> str:
        from ncc.embeddings.encoders import embeddings_digest

        return embeddings_digest(self.embeddings)


# ------------------------------------------------------------------------------------------------ task

@dataclass(frozen=True)
class ClassifyappOptions:
    """Options of ``ncc train classifyapp`` (the ``[task]`` table of a configuration).

    Attributes:
        protocol: ``full`` (300 / 100 / 100 per class) or ``quick`` (60 / 20 / 20).
        classes: use labels 1..this (104: all).
        opt_levels: comma-separated clang optimisation levels; each program is compiled at every one.
        split_file: a split written by :func:`write_split` ("" : ncc's :data:`SPLIT_FILE`).
    """

    protocol: str = "quick"
    classes: int = CLASSES
    opt_levels: str = "0"
    split_file: str = ""

    def check(self, prefix: str = "task.", source: str | None = None) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"{prefix}protocol: must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}",
                              source)
        if not 2 <= self.classes <= CLASSES:
            raise ConfigError(f"{prefix}classes: must be in 2..{CLASSES}, got {self.classes}", source)
        levels = self.levels()
        bad = [level for level in levels if level not in ("0", "1", "2", "3", "s", "z")]
        if not levels or bad or len(set(levels)) != len(levels):
            raise ConfigError(f"{prefix}opt_levels: expected distinct levels from 0,1,2,3,s,z, got {self.opt_levels!r}",
                              source)
        if self.split_file and not Path(self.split_file).is_file():
            raise ConfigError(f"{prefix}split_file: no such file {self.split_file!r}", source)

    def levels(self) -> list[str]:
        return [level.strip() for level in self.opt_levels.split(",") if level.strip()]


class ClassifyappTask(SupervisedTask):
    """104-way classification of POJ-104 programs; see the module docstring."""

    name = "classifyapp"
    description = "algorithm classification of POJ-104 programs (104 classes)"
    options_class = ClassifyappOptions
    level = "graph"
    metric_names = ("accuracy", "f1", "loss")
    monitor = "accuracy"
    rows = MODELS
    fast_rows = ("bag", "ggnn")
    protocols = PROTOCOLS
    table_options = ("classes",)

    def reproduce(self, output: Path, request: TableRequest) -> TableResult:
        """The POJ-104 table (:func:`reproduce_classifyapp`) of the requested rows, under one protocol.

        Raises:
            NccError: more than one protocol, folds, or a system clang (the programs compile with ncc's
                default toolchain or ``$NCC_CLANG``).
        """
        self.check_request(request)
        if len(request.protocols) > 1:
            raise NccError(f"classifyapp takes one protocol of {', '.join(PROTOCOLS)}")
        if request.folds is not None:
            raise NccError("classifyapp has one split, no folds")
        if request.clang:
            raise NccError("classifyapp compiles with the default toolchain (or $NCC_CLANG), not --clang")
        rows = reproduce_classifyapp(output, request.rows or self.fast_rows,
                                     request.protocols[0] if request.protocols else "quick", request.seeds,
                                     request.options.get("classes", CLASSES),
                                     settings={"epochs": request.epochs} if request.epochs else None,
                                     workers=request.workers, progress=request.progress)
        notes = [f"programs compiled: {rows[0]['programs']}; the others are listed with clang's reason in "
                 f"{output / 'compile-failures.csv'}"]
        return TableResult(rows, output / "classifyapp.md", output / "classifyapp.csv", notes)

    def compiled(self, options: ClassifyappOptions, workers: int | None = None, progress: bool = True,
                 clang: Any = None) -> CompiledPrograms:
        """Compile the protocol's programs; the failures are logged with their count."""
        split = load_split(options.split_file) if options.split_file else load_split()
        chosen = select_programs(load_programs(), options.protocol, options.classes, split)
        compiled = compile_programs(chosen, options.levels(), workers=workers, clang=clang, progress=progress)
        logger.info("classifyapp %s: %s", options.protocol, compiled.summary())
        return compiled

    def prepare(self, config: "TrainConfig", progress: bool = True, encoder: Any = None) -> TaskData:
        """Compile and build the protocol's programs (all cached) into train / val / test datasets.

        Node features follow ``data.features``: node text (a ``NodeVocabulary`` fitted on ``train``; the
        graph models' default) or inst2vec statement ids (the ``lstm``'s default), whose embeddings are
        trained without labels on the training split's IR and handed to the model as its starting
        embedding table (``TaskData.pretrained``).
        """
        from ncc.embeddings.node_vocabulary import NodeVocabulary
        from ncc.training.datasets import ProgramGraphDataset

        options = self.check_options(config.task_options)
        workers = None  # compile and build graphs on every CPU (config.data.workers is the DataLoader's)
        root = (Path(config.data.cache_dir) if config.data.cache_dir else cache_home()) / "classifyapp"
        compiled = self.compiled(options, workers=workers, progress=progress)
        failures_path = compiled.write_failures(root / f"compile-failures-{compiled.key[:16]}.csv")
        sources = {name: _CompiledSplit(compiled.entries[name], _sha(compiled.key, name), workers, progress, name)
                   for name in SPLITS}
        for name in SPLITS:
            if not sources[name].items:
                raise DatasetError(f"no program of split {name!r} compiled; see {failures_path}", str(root))
        pretrained = None
        ir_files = [ir for source in sources.values() for _, _, ir in source.items]
        if isinstance(encoder, ModuleStatementIds):  # a checkpoint's: read this run's IR files
            encoder = ModuleStatementIds(encoder.embeddings, ir_files)
        elif encoder is None and config.data.feature_kind(config.model.name) == "inst2vec":
            embeddings = _train_embeddings([ir for _, _, ir in sources["train"].items],
                                           root / f"inst2vec-{sources['train'].key[:16]}", progress)
            encoder = ModuleStatementIds(embeddings, ir_files)
            pretrained = embeddings.feature_matrix()
        elif encoder is None:
            path = root / f"vocabulary-{_sha(sources['train'].key, config.data.min_count)[:24]}.json"
            if path.is_file():
                encoder = NodeVocabulary.load(path)
            else:
                encoder = NodeVocabulary(min_count=config.data.min_count).fit(sources["train"].graphs())
                encoder.save(path)
        splits = {name: ProgramGraphDataset(root, source, encoder, name=f"{options.protocol}-{name}",
                                            progress=progress) for name, source in sources.items()}
        info = {name: {"graphs": len(data), "nodes_mean": float(np.mean(data.num_nodes_per_graph))}
                for name, data in splits.items()}
        info.update({"programs": compiled.programs, "compiled_programs": compiled.compiled_programs,
                     "failed_variants": len(compiled.failures), "failures_file": str(failures_path),
                     "vocabulary": len(encoder), "protocol": options.protocol, "classes": options.classes})
        return TaskData(splits=splits, encoder=encoder, num_classes=options.classes, info=info,
                        pretrained=pretrained)


def _train_embeddings(ir_files: Sequence[Path], folder: Path, progress: bool):
    """inst2vec trained without labels on IR files, cached in ``folder``."""
    from ncc.embeddings.skipgram import Embeddings
    from ncc.embeddings.train import embed

    if (folder / "embeddings.npy").is_file():
        return Embeddings.load(folder)
    return embed([], folder, ir_files=[(Path(p).stem, str(p)) for p in ir_files], progress=progress,
                 workers=os.cpu_count() or 1).embeddings


# ------------------------------------------------------------------------------------------- the table

#: Trainer settings of the neural rows on each protocol (overridden by ``settings``).
TRAIN_SETTINGS = {
    "quick": {"epochs": 12, "patience": 4, "data.batch_size": 64, "optimizer.lr": 2e-3},
    "full": {"epochs": 20, "patience": 10, "data.batch_size": 64, "optimizer.lr": 1e-3},
}
#: ProGraML's POJ-104 GGNN reads inst2vec statement ids (its 8,568-entry vocabulary, 200-dimensional
#: embeddings trained with the model), not node texts: with clang 22's opaque pointers the node texts of
#: the quick training split number 56, and a logistic regression on them scores 61.4 % where one on
#: statements scores 87.6 %. rgine reads them too (quick protocol, 3 seeds: 83.6 % against 78.6 % on node texts).
_STATEMENTS = {"data.features": "inst2vec", "model.freeze_embeddings": False}
_ANNEALED = {"optimizer.scheduler": "cosine", "patience": 0}
_ANNEALED_20 = {"epochs": 20, **_ANNEALED}
#: Per model and protocol, on top of TRAIN_SETTINGS: an LSTM steps through the longest sequence of its
#: batch, so its batches hold programs of similar size, and on the quick protocol (CPU) it reads each
#: program's first 512 statements (median ~140; 6 % have more). The GGNN follows ProGraML's POJ-104
#: configuration (hidden size 200 = the embedding's, layer groups 2,2,2, graph-state dropout 0.1) on the
#: full protocol; on the quick one (CPU) its node states have 32 dimensions, as in its other tables, and it
#: trains 30 epochs (in 12 its validation accuracy was still rising by 2-4 points an epoch).
#: rgine trains 20 epochs on the quick protocol, every epoch, with the learning rate annealed to 0 (cosine):
#: at the constant rate its validation accuracy swung by 4-6 points between epochs (3 seeds: 83.6 % test
#: accuracy in 12 epochs at the constant rate, 88.2 % so). The LSTM the same way (it was still climbing at
#: epoch 12; 3 seeds: 43.7 % -> 52.0 %). On the full protocol both anneal over its 20 epochs, for the same
#: reason. 20 epochs (not ProGraML's 150 or the 80 planned for a GPU) so that a row trains on 2 CPU cores
#: within a few sessions: 31,200 training graphs an epoch, five times the quick protocol's.
MODEL_SETTINGS = {("lstm", "quick"): {"model.max_length": 512, "data.bucket": True, **_ANNEALED_20},
                  ("lstm", "full"): {"data.bucket": True, **_ANNEALED},
                  ("ggnn", "quick"): {**_STATEMENTS, "model.hidden_size": 32, "epochs": 30},
                  ("ggnn", "full"): {**_STATEMENTS, "model.steps": "2,2,2", "model.dropout": 0.1},
                  ("rgine", "quick"): {**_STATEMENTS, **_ANNEALED_20},
                  ("rgine", "full"): {**_STATEMENTS, **_ANNEALED}}


def bag_of_nodes(data: TaskData, seed: int = 0) -> dict[str, dict[str, float]]:
    """Logistic regression on each graph's counts of node feature ids (sublinear tf-idf); C chosen on ``val``.

    Reads the ``x`` ids of the processed datasets (node texts or inst2vec statements, as
    ``data.features`` made them), so it sees the same programs and features as the graph models, without
    edges.
    """
    import scipy.sparse as sparse
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    def counts(dataset) -> tuple[Any, np.ndarray]:
        ids = dataset._data.x.reshape(-1).numpy()
        rows = np.repeat(np.arange(len(dataset)), dataset.num_nodes_per_graph)
        matrix = sparse.csr_matrix((np.ones(len(ids)), (rows, ids)), shape=(len(dataset), len(data.encoder)))
        return matrix, dataset.labels.reshape(-1).numpy()

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (counts(data.splits[s]) for s in SPLITS)
    tfidf = TfidfTransformer(sublinear_tf=True).fit(x_train)
    x_train, x_val, x_test = (tfidf.transform(x) for x in (x_train, x_val, x_test))
    best = None
    for c in (1.0, 10.0, 100.0):
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, y_train)
        score = float(np.mean(model.predict(x_val) == y_val))
        if best is None or score > best[0]:
            best = (score, c, model)
    _, c, model = best
    return {"val": {"accuracy": best[0]}, "test": {"accuracy": float(np.mean(model.predict(x_test) == y_test))},
            "C": c}


def run_folder(output: str | Path, protocol: str, model: str, seed: int, settings: dict) -> Path:
    """``<output>/<protocol>/<model>-seed<k>-<settings digest>``."""
    from ncc.training.crossval import run_name

    return Path(output) / protocol / run_name(model, seed, settings)


def row_settings(model: str, protocol: str, settings: dict | None = None) -> dict:
    """A neural row's trainer settings: :data:`TRAIN_SETTINGS`, then :data:`MODEL_SETTINGS`, then ``settings``."""
    return {**TRAIN_SETTINGS[protocol], **MODEL_SETTINGS.get((model, protocol), {}), **(settings or {})}


def _row_folder(model: str, seed: int, output: str | Path, protocol: str, classes: int, opt_levels: str,
                settings: dict | None) -> tuple[Path, dict, dict]:
    merged = row_settings(model, protocol, settings)
    task_options = {"task.protocol": protocol, "task.classes": classes, "task.opt_levels": opt_levels}
    return run_folder(output, protocol, model, seed, {**merged, **task_options}), merged, task_options


def run_status(folder: str | Path) -> dict:
    """Where a neural row's run stands: ``{"status": text, "val": best validation accuracy or None, "epochs"}``.

    ``done``; ``incomplete: epoch E/N`` (and the steps of the epoch under way) for a run with a
    checkpoint and no report; ``not started``.
    """
    from ncc.training import trainer as training

    folder = Path(folder)
    if (folder / training.REPORT_FILE).is_file():
        report = json.loads((folder / training.REPORT_FILE).read_text())
        return {"status": "done", "val": report["metrics"]["best_val"], "epochs": report["epochs_run"]}
    if not (folder / training.CHECKPOINT_FILE).is_file():
        return {"status": "not started", "val": None, "epochs": 0}
    checkpoint = training.load_checkpoint(folder / training.CHECKPOINT_FILE)
    state, total = checkpoint["state"], checkpoint["config"]["epochs"]
    text = f"incomplete: epoch {state['epoch']}/{total}"
    partial = state.get("epoch_progress")
    if partial:
        text += f" and {partial['steps']} steps of epoch {partial['epoch']}"
    return {"status": text, "val": state.get("best"), "epochs": state["epoch"]}


def train_row(model: str, seed: int, output: str | Path, protocol: str = "quick", classes: int = CLASSES,
              opt_levels: str = "0", settings: dict | None = None, progress: bool = True) -> dict:
    """Train (or find finished) one neural row and return its report; an interrupted run resumes."""
    from ncc.training import trainer as training
    from ncc.training.config import load_config

    folder, merged, task_options = _row_folder(model, seed, output, protocol, classes, opt_levels, settings)
    report_path = folder / training.REPORT_FILE
    if report_path.is_file() and (folder / training.BEST_FILE).is_file():
        return json.loads(report_path.read_text())
    overrides = {"task": "classifyapp", "model.name": model, "seed": seed, "output": str(folder),
                 "progress": progress, "resume": (folder / training.CHECKPOINT_FILE).is_file(), **task_options,
                 **merged}
    return training.train(load_config(None, overrides)).report


def split_outputs(run: str | Path, split: str = "test", features: bool = False,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A finished run's logits (or graph representations, see :func:`ncc.training.trainer.predict`) on a split,
    and the split's labels (0-based)."""
    from ncc.training import trainer as training
    from ncc.training.config import TrainConfig

    payload = training.load_checkpoint(Path(run) / training.BEST_FILE)
    config = TrainConfig.from_dict(payload["config"])
    data = ClassifyappTask().prepare(config, progress=progress, encoder=payload["encoder"])
    dataset = data.splits[split]
    return training.predict(payload, dataset, features=features), dataset.labels.reshape(-1).numpy()


def reproduce_classifyapp(output: str | Path, models: Sequence[str] = ("bag", "ggnn"), protocol: str = "quick",
                          seeds: Sequence[int] = (0,), classes: int = CLASSES, opt_levels: str = "0",
                          settings: dict | None = None, workers: int | None = None,
                          progress: bool = True) -> list[dict]:
    """Run every (model, seed), write ``classifyapp.csv`` / ``classifyapp.md`` to ``output``, return the rows.

    The programs that did not compile are listed in ``compile-failures.csv`` there.
    Each row holds the test and validation accuracy (%) as mean and standard deviation over the seeds,
    the programs that compiled, the training time, its ``status`` and (not in the files) ``runs``, the
    run folders of the neural rows; the published figures follow as rows of their own. Stopped by
    KeyboardInterrupt (or SIGTERM through the CLI), it still writes the table, with the rows not finished
    listed by :func:`run_status` (resume by running it again), and re-raises.
    """
    from ncc.training.crossval import write_table

    for name in models:
        if name not in MODELS:
            raise NccError(f"unknown classifyapp model {name!r}; choose one of {', '.join(MODELS)}")
    if protocol not in PROTOCOLS:
        raise NccError(f"unknown classifyapp protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    output = Path(output)
    task = ClassifyappTask()
    options = {"task.protocol": protocol, "task.classes": classes, "task.opt_levels": opt_levels}
    compiled = task.compiled(task.check_options({k[5:]: v for k, v in options.items()}), workers, progress)
    compiled.write_failures(output / "compile-failures.csv")
    rows = []
    columns = ["model", "reads", "protocol", "test_accuracy", "test_accuracy_std", "val_accuracy",
               "val_accuracy_std", "seeds", "epochs", "minutes", "programs", "status"]
    try:
        for name in models:
            rows.append(_table_row(name, task, compiled, output, protocol, seeds, classes, opt_levels, options,
                                   settings, progress))
    except KeyboardInterrupt:
        for name in models[len(rows):]:
            statuses = [(seed, run_status(_row_folder(name, seed, output, protocol, classes, opt_levels,
                                                      settings)[0])) for seed in seeds if name not in BAGS]
            for seed, status in statuses or [(None, {"status": "not run", "val": None, "epochs": 0})]:
                rows.append({"model": name, "reads": MODELS[name], "protocol": protocol, "seeds": 1,
                             "programs": f"{compiled.compiled_programs}/{compiled.programs}",
                             "val_accuracy": 100 * status["val"] if status["val"] is not None else float("nan"),
                             "epochs": status["epochs"],
                             "status": status["status"] if seed is None else f"seed {seed}: {status['status']}"})
        write_table(rows + _published_rows(), columns, output / "classifyapp")
        logger.warning("interrupted: the table in %s lists the rows not finished; run again to resume", output)
        raise
    rows += _published_rows()
    write_table(rows, columns, output / "classifyapp")
    return rows


def _published_rows() -> list[dict]:
    return [{"model": name, "reads": "(published)", "protocol": "NCC's 3:1:1 split", "test_accuracy": value}
            for name, value in PUBLISHED.items()]


#: What a bag row fits, in its folder's name: a change to :func:`bag_of_nodes` must change it.
BAG_MODEL = "sublinear tf-idf, logistic regression, C in 1/10/100 on val"


def _bag_result(name: str, task: ClassifyappTask, output: Path, protocol: str, options: dict,
                progress: bool) -> dict:
    """A bag row's accuracies and fit time, read from its folder's ``report.json`` or fitted and written there."""
    from ncc.fileio import atomic_write
    from ncc.training.config import load_config

    folder = run_folder(output, protocol, name, 0, {**options, "data.features": BAGS[name], "bag": BAG_MODEL})
    report = folder / "report.json"
    if report.is_file():
        return json.loads(report.read_text())
    config = load_config(None, {"task": "classifyapp", "model.name": "ggnn", "data.features": BAGS[name],
                                **options})
    started = time.perf_counter()
    metrics = bag_of_nodes(task.prepare(config, progress=progress))
    result = {"test": metrics["test"]["accuracy"], "val": metrics["val"]["accuracy"], "C": metrics["C"],
              "seconds": time.perf_counter() - started, "epochs": None}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(report, json.dumps(result, indent=1) + "\n")
    return result


def _table_row(name: str, task: ClassifyappTask, compiled: Any, output: Path, protocol: str, seeds: Sequence[int],
               classes: int, opt_levels: str, options: dict, settings: dict | None, progress: bool) -> dict:
    """One finished row of the table: every seed of model ``name`` trained (or found finished)."""
    results, runs = [], []
    for seed in seeds:
        if name in BAGS:
            results.append(_bag_result(name, task, output, protocol, options, progress))
            break  # deterministic: one fit stands for every seed
        report = train_row(name, seed, output, protocol, classes, opt_levels, settings, progress)
        runs.append(report["config"]["output"])
        results.append({"test": report["metrics"]["test"]["accuracy"], "val": report["metrics"]["best_val"],
                        "seconds": report["wall_time_s"], "epochs": report["epochs_run"]})
    row = {"model": name, "reads": MODELS[name], "protocol": protocol, "seeds": len(results),
           "programs": f"{compiled.compiled_programs}/{compiled.programs}", "runs": runs, "status": "done"}
    for metric in ("test", "val"):
        values = 100 * np.array([r[metric] for r in results])
        row[f"{metric}_accuracy"] = float(values.mean())
        row[f"{metric}_accuracy_std"] = float(values.std()) if len(values) > 1 else float("nan")
    row["minutes"] = float(np.mean([r["seconds"] for r in results]) / 60)
    epochs = [r["epochs"] for r in results if r["epochs"] is not None]
    row["epochs"] = float(np.mean(epochs)) if epochs else float("nan")
    return row
