"""Tasks on generated programs: the programs written to disk, compiled through the batch compiler's cache,
built into program graphs and turned into examples on demand (:class:`CompiledSource`), and the task base
that splits and encodes them (:class:`GeneratedProgramsTask`)."""

from __future__ import annotations

import abc
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ncc.errors import DatasetError
from ncc.fileio import atomic_write
from ncc.frontend.generator import GENERATOR_VERSION, generate_program
from ncc.graph import ProgramGraph
from ncc.paths import cache_home
from ncc.training.config import ConfigError
from ncc.training.task import SupervisedTask, TaskData

if TYPE_CHECKING:  # pragma: no cover
    from ncc.training.config import TrainConfig

__all__ = ["CompiledSource", "GeneratedOptions", "GeneratedProgramsTask", "generate_programs", "digest"]


def digest(*parts: Any) -> str:
    """sha256 of JSON-able parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class CompiledSource:
    """The source files of one split, compiled (cached) at one or more optimisation levels and made into examples.

    Args:
        programs: ``(name, source file, label)`` of each program.
        ir_cache: the compiler's IR cache.
        toolchain: the clang toolchain (its name and version are part of the key).
        make_examples: ``(name, graph, label) -> [Example, ...]``: the examples of one compiled program (it
            may raise :class:`~ncc.errors.DatasetError` when the program contradicts its label).
        kind: names what the examples are, in the key (change it when ``make_examples`` changes).
        opt_levels: the levels to compile at; with more than one, a name gets ``@O<level>`` appended.
        strict: a program that does not compile fails the whole split (generated programs); otherwise it is
            listed in :attr:`failures` and left out.
        per_source_flags: clang flags per source file (``path -> flags``), part of the key.
        workers: compile processes (None: every CPU).
        progress: show progress bars.

    Attributes:
        failures: ``(name, level, reason)`` of the programs left out, once :meth:`examples` has run.
    """

    def __init__(self, programs: Sequence[tuple[str, Path, Any]], ir_cache: Path, toolchain: Any,
                 make_examples: Callable[[str, ProgramGraph, Any], list], kind: str, opt_levels: Sequence[str] = ("0",),
                 strict: bool = True, workers: int | None = None, progress: bool = True,
                 per_source_flags: Callable[[Path], Sequence[str]] | None = None):
        self.programs = [(name, Path(path), label) for name, path, label in programs]
        self.ir_cache = Path(ir_cache)
        self.toolchain = toolchain
        self.make_examples = make_examples
        self.opt_levels = tuple(str(level) for level in opt_levels)
        self.strict = strict
        self.workers = workers
        self.progress = progress
        self.per_source_flags = per_source_flags
        self.failures: list[tuple[str, str, str]] = []
        self.key = digest(kind, GENERATOR_VERSION, toolchain.name, toolchain.version, self.opt_levels,
                          [(name, hashlib.sha256(path.read_bytes()).hexdigest(), label,
                            list(per_source_flags(path)) if per_source_flags else [])
                           for name, path, label in self.programs])
        self._examples: list | None = None

    def __len__(self) -> int:
        return len(self.examples())

    def examples(self) -> list:
        from tqdm import tqdm

        from ncc.frontend import compile_batch
        from ncc.graph import build

        if self._examples is not None:
            return self._examples
        by_path = {path: (name, label) for name, path, label in self.programs}
        examples, failures = [], []
        for level in self.opt_levels:
            result = compile_batch(list(by_path), opt_level=level, workers=self.workers, cache_dir=self.ir_cache,
                                   progress=self.progress, clang=self.toolchain,
                                   per_source_flags=self.per_source_flags)
            failures += [(by_path[Path(f.path)][0], level, f.reason) for f in result.failures]
            if self.strict and failures:
                name, _, reason = failures[0]
                raise DatasetError(f"{len(failures)} programs did not compile, first: {reason}", name)
            for entry in tqdm(result.entries, desc=f"labels -O{level}", unit="program", leave=False,
                              disable=not self.progress):
                name, label = by_path[Path(entry.path)]
                suffix = f"@O{level}" if len(self.opt_levels) > 1 else ""
                examples += self.make_examples(f"{name}{suffix}", build(entry.module(), name=name), label)
        self.failures = failures
        self._examples = examples
        return examples


@dataclass(frozen=True)
class GeneratedOptions:
    """Options of a task on generated programs (the ``[task]`` table of a configuration).

    Attributes:
        programs: how many programs to generate (half with loops).
        seed: seeds the generator, the split and anything else the task draws (separate from the training seed).
        val_fraction: share of programs for validation.
        test_fraction: share of programs for the test.
        max_functions: functions per program, 1 to this.
        max_statements: statements per block, 1 to this.
    """

    programs: int = 400
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_functions: int = 3
    max_statements: int = 5

    def check(self, prefix: str = "task.", source: str | None = None) -> None:
        """Raise ConfigError on an impossible value."""
        self.check_programs(prefix, source)
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not 0.0 < value < 0.5:
                raise ConfigError(f"{prefix}{key}: must be in (0, 0.5), got {value!r}", source)
        if self.max_functions < 1 or self.max_statements < 1:
            key = "max_functions" if self.max_functions < 1 else "max_statements"
            raise ConfigError(f"{prefix}{key}: must be >= 1, got {getattr(self, key)}", source)

    def check_programs(self, prefix: str, source: str | None) -> None:
        if self.programs < 10:
            raise ConfigError(f"{prefix}programs: must be >= 10, got {self.programs}", source)


def generate_programs(options: GeneratedOptions, prefix: str) -> list[tuple[str, str, int]]:
    """``(name, source, has a loop)`` of every program of the options, alternately without and with loops."""
    programs = []
    for index in range(options.programs):
        label = index % 2
        seed = options.seed * 1_000_003 + index
        source = generate_program(seed, bool(label), options.max_functions, options.max_statements)
        programs.append((f"{prefix}_{options.seed}_{index:05d}", source, label))
    return programs


class GeneratedProgramsTask(SupervisedTask):
    """A task on generated C programs (:mod:`ncc.frontend.generator`), node texts as features.

    The programs are generated, compiled at ``-O0`` and built (all cached), split at random (seeded) into
    train / val / test, every example of a program in its program's split; the node vocabulary is fitted
    on the training split only and cached by the training split's key and ``data.min_count``. A subclass
    says what the examples of one program are (:meth:`make_examples`).
    """

    options_class = GeneratedOptions
    num_classes = 2
    #: Whether the examples carry a root selector the model must read.
    uses_selector = False

    @abc.abstractmethod
    def make_examples(self, options: Any, name: str, graph: ProgramGraph, has_loop: int) -> list:
        """The examples of one program (``has_loop``: whether a generated program was made with a loop)."""

    def examples_kind(self, options: Any) -> str:
        """Names what :meth:`make_examples` gives for these options, in the data's cache key."""
        return f"ncc.{self.name}"

    def split_info(self, dataset: Any) -> dict:
        """Facts about one prepared split for the report."""
        return {"graphs": len(dataset), "nodes_mean": float(np.mean(dataset.num_nodes_per_graph))}

    def program_files(self, options: Any, root: Path) -> list[tuple[str, Path, Any]]:
        """``(name, source file, label)`` of every program: the generated ones, written under ``root/sources``."""
        files = []
        for name, text, label in generate_programs(options, self.name):
            path = root / "sources" / f"{name}.c"
            if not path.exists() or path.read_text() != text:
                atomic_write(path, text)
            files.append((name, path, label))
        return files

    def compile_levels(self, options: Any) -> tuple[str, ...]:
        """The optimisation levels every program is compiled at."""
        return ("0",)

    def source_flags(self, options: Any) -> Callable[[Path], Sequence[str]] | None:
        """Extra clang flags per source file, or None."""
        return None

    def compiles_strictly(self, options: Any) -> bool:
        """Whether a program that does not compile fails the data set (generated ones must all compile)."""
        return True

    def final_splits(self, options: Any, sources: dict) -> dict:
        """The splits' example sources as they go into datasets (a subclass may add splits)."""
        return sources

    def prepare(self, config: "TrainConfig", progress: bool = True, encoder: Any = None) -> TaskData:
        from ncc.embeddings.node_vocabulary import NodeVocabulary
        from ncc.frontend import find_toolchain
        from ncc.training.datasets import ProgramGraphDataset, split_indices

        options = self.check_options(config.task_options)
        if config.data.features == "inst2vec":
            raise ConfigError(f"data.features: the {self.name} task reads node texts only; use text or auto")
        root = (Path(config.data.cache_dir) if config.data.cache_dir else cache_home()) / self.name
        files = self.program_files(options, root)
        train_fraction = 1.0 - options.val_fraction - options.test_fraction
        parts = split_indices(len(files), [train_fraction, options.val_fraction, options.test_fraction],
                              seed=options.seed)
        make_examples = functools.partial(self.make_examples, options)
        sources = {split: CompiledSource([files[i] for i in indices], root / "ir", find_toolchain(), make_examples,
                                         self.examples_kind(options), self.compile_levels(options),
                                         strict=self.compiles_strictly(options),
                                         per_source_flags=self.source_flags(options),
                                         workers=config.data.workers or None, progress=progress)
                   for split, indices in zip(("train", "val", "test"), parts)}
        vocabulary_path = root / f"vocabulary-{digest(sources['train'].key, config.data.min_count)[:24]}.json"
        if encoder is not None:
            vocabulary = encoder
        elif vocabulary_path.exists():
            vocabulary = NodeVocabulary.load(vocabulary_path)
        else:
            graphs = [example.graph for example in sources["train"].examples()]
            vocabulary = NodeVocabulary(min_count=config.data.min_count).fit(graphs)
            vocabulary.save(vocabulary_path)
        splits = {split: ProgramGraphDataset(root, source, vocabulary, name=split, progress=progress)
                  for split, source in self.final_splits(options, sources).items()}
        info = {split: self.split_info(data) for split, data in splits.items()}
        info["vocabulary"] = len(vocabulary)
        info["compile_failures"] = sum(len(getattr(source, "failures", ())) for source in sources.values())
        return TaskData(splits=splits, encoder=vocabulary, num_classes=self.num_classes, info=info,
                        selector=self.uses_selector)
