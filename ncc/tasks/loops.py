"""The ``loops`` sanity task: does a program contain a loop?

A seeded generator writes small C programs of one to a few functions: integer arithmetic, ``if`` /
``else`` branches, calls to earlier functions and, in half of the programs, ``for``, ``while`` or
``do``-``while`` loops (possibly nested, in any function). Programs with and without loops use the same
statements, comparisons and increments, so only the shape of the control flow tells them apart. They
are compiled at ``-O0`` with :func:`ncc.frontend.compile_batch` (cached), built into program graphs and
split at random (seeded) into train / val / test. Each label is checked against the control flow of
the graph itself (:func:`has_loop`: a cycle of control edges), which is also how graphs from files
given to ``ncc evaluate`` are labelled.

A model that reads node texts and edges should learn it to near 100 % in seconds; anything less points
at a bug in the data path, the model or the trainer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ncc.errors import DatasetError, NccError
from ncc.graph.program_graph import CONTROL, ProgramGraph
from ncc.paths import cache_home
from ncc.tasks.config import ConfigError
from ncc.tasks.task import Task, TaskData

if TYPE_CHECKING:  # pragma: no cover
    from ncc.tasks.config import TrainConfig

logger = logging.getLogger(__name__)

#: Bumped when the generator's output changes for the same options.
GENERATOR_VERSION = 1

__all__ = ["LoopsOptions", "LoopsTask", "generate_program", "generate_programs", "has_loop"]


@dataclass(frozen=True)
class LoopsOptions:
    """Options of the loops task (the ``[task]`` table of a configuration).

    Attributes:
        programs: how many programs to generate (half with loops).
        seed: seeds the generator and the split (separate from the training seed).
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
        if self.programs < 10:
            raise ConfigError(f"{prefix}programs: must be >= 10, got {self.programs}", source)
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not 0.0 < value < 0.5:
                raise ConfigError(f"{prefix}{key}: must be in (0, 0.5), got {value!r}", source)
        if self.max_functions < 1 or self.max_statements < 1:
            key = "max_functions" if self.max_functions < 1 else "max_statements"
            raise ConfigError(f"{prefix}{key}: must be >= 1, got {getattr(self, key)}", source)


# ------------------------------------------------------------------------------------------- generator

class _Writer:
    """Writes one function body: statements over a fixed set of int variables."""

    OPERATORS = ("+", "-", "*", "&", "|", "^")
    COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")

    def __init__(self, rng: random.Random, variables: list[str], callees: list[tuple[str, int]],
                 max_statements: int, loops: bool):
        self.rng = rng
        self.variables = variables
        self.callees = callees
        self.max_statements = max_statements
        self.loops = loops
        self.counters = 0

    def operand(self) -> str:
        rng = self.rng
        return rng.choice(self.variables) if rng.random() < 0.7 else str(rng.randint(1, 9))

    def expression(self) -> str:
        rng = self.rng
        text = self.operand()
        for _ in range(rng.randint(0, 2)):
            text = f"{text} {rng.choice(self.OPERATORS)} {self.operand()}"
        return text

    def condition(self) -> str:
        return f"{self.rng.choice(self.variables)} {self.rng.choice(self.COMPARISONS)} {self.operand()}"

    def simple(self, indent: str) -> str:
        rng = self.rng
        target = rng.choice(self.variables)
        roll = rng.random()
        if self.callees and roll < 0.2:
            name, arity = rng.choice(self.callees)
            arguments = ", ".join(self.expression() for _ in range(arity))
            return f"{indent}{target} = {name}({arguments});"
        if roll < 0.35:
            return f"{indent}{target}{rng.choice(('++', '--', ' += 2', ' -= 3'))};"
        return f"{indent}{target} = {self.expression()};"

    def loop(self, indent: str, depth: int) -> str:
        rng = self.rng
        kind = rng.choice(("for", "while", "do"))
        inner = self.block(indent + "    ", depth + 1)
        bound = self.operand()
        if kind == "for":
            counter = f"i{self.counters}"
            self.counters += 1
            step = rng.choice((f"{counter}++", f"{counter} += 2", f"{counter} = {counter} + 1"))
            return f"{indent}for (int {counter} = 0; {counter} < {bound}; {step}) {{\n{inner}\n{indent}}}"
        variable = rng.choice(self.variables)
        update = f"{indent}    {variable} = {variable} - {rng.randint(1, 3)};"
        if kind == "while":
            return f"{indent}while ({variable} > {bound}) {{\n{inner}\n{update}\n{indent}}}"
        return f"{indent}do {{\n{inner}\n{update}\n{indent}}} while ({variable} > {bound});"

    def branch(self, indent: str, depth: int) -> str:
        text = f"{indent}if ({self.condition()}) {{\n{self.block(indent + '    ', depth + 1)}\n{indent}}}"
        if self.rng.random() < 0.5:
            text += f" else {{\n{self.block(indent + '    ', depth + 1)}\n{indent}}}"
        return text

    def statement(self, indent: str, depth: int) -> str:
        roll = self.rng.random()
        if depth < 2 and roll < 0.25:
            return self.branch(indent, depth)
        if self.loops and depth < 2 and roll < 0.4:
            return self.loop(indent, depth)
        return self.simple(indent)

    def block(self, indent: str, depth: int) -> str:
        count = self.rng.randint(1, max(1, self.max_statements - depth))
        return "\n".join(self.statement(indent, depth) for _ in range(count))


def generate_program(seed: int, with_loop: bool, max_functions: int = 3, max_statements: int = 5) -> str:
    """One C program, a function of its arguments only.

    Args:
        seed: the generator seed.
        with_loop: put at least one loop in (else none at all).
        max_functions: functions in the program, 1 to this.
        max_statements: statements per block, 1 to this.

    Returns:
        The C source text.
    """
    rng = random.Random(seed)
    count = rng.randint(1, max_functions)
    looping = rng.randrange(count) if with_loop else -1
    functions: list[str] = []
    callees: list[tuple[str, int]] = []
    for index in range(count):
        arity = rng.randint(1, 3)
        parameters = [f"p{k}" for k in range(arity)]
        locals_ = [f"v{k}" for k in range(rng.randint(1, 3))]
        writer = _Writer(rng, parameters + locals_, list(callees), max_statements,
                         loops=with_loop and rng.random() < 0.5)
        body = writer.block("    ", 0)
        if index == looping:  # make sure this one loops, at a random place of its top level
            lines = body.split("\n")
            anchors = [i for i, line in enumerate(lines) if line.startswith("    ") and not line.startswith("     ")
                       and not line.startswith("    }")] or [0]
            position = rng.choice(anchors)
            body = "\n".join(lines[:position] + [writer.loop("    ", 1)] + lines[position:])
        declarations = "\n".join(f"    int {name} = {rng.randint(0, 9)};" for name in locals_)
        result = " + ".join(rng.sample(parameters + locals_, k=min(2, len(parameters + locals_))))
        signature = ", ".join(f"int {p}" for p in parameters)
        name = f"f{index}"
        functions.append(f"int {name}({signature}) {{\n{declarations}\n{body}\n    return {result};\n}}\n")
        callees.append((name, arity))
    return "\n".join(functions)


def generate_programs(options: LoopsOptions) -> list[tuple[str, str, int]]:
    """``(name, source, label)`` of every program of the options, alternately without and with loops."""
    programs = []
    for index in range(options.programs):
        label = index % 2
        seed = options.seed * 1_000_003 + index
        source = generate_program(seed, bool(label), options.max_functions, options.max_statements)
        programs.append((f"loops_{options.seed}_{index:05d}", source, label))
    return programs


def has_loop(graph: ProgramGraph) -> bool:
    """True when the graph's control edges form a cycle (a loop at ``-O0``; recursion does not count).

    Kahn's algorithm over the control-flow subgraph: a cycle is what remains when no node without
    incoming edges is left.
    """
    edges = graph.edges(CONTROL)
    if edges.shape[1] == 0:
        return False
    nodes, inverse = np.unique(edges.reshape(-1), return_inverse=True)
    source, target = inverse.reshape(2, -1)
    indegree = np.bincount(target, minlength=len(nodes))
    order = np.argsort(source, kind="stable")
    starts = np.searchsorted(source[order], np.arange(len(nodes) + 1))
    successors = target[order]
    ready = list(np.flatnonzero(indegree == 0))
    removed = 0
    while ready:
        node = ready.pop()
        removed += 1
        for successor in successors[starts[node]:starts[node + 1]]:
            indegree[successor] -= 1
            if indegree[successor] == 0:
                ready.append(successor)
    return removed < len(nodes)


# ------------------------------------------------------------------------------------------------ data

def _sha(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class _GeneratedSource:
    """The programs of one split: written to disk, compiled (cached), built and label-checked on demand."""

    def __init__(self, programs: Sequence[tuple[str, str, int]], folder: Path, ir_cache: Path, toolchain: Any,
                 workers: int | None, progress: bool):
        self.programs = list(programs)
        self.folder = folder
        self.ir_cache = ir_cache
        self.toolchain = toolchain
        self.workers = workers
        self.progress = progress
        self.key = _sha("ncc.loops", GENERATOR_VERSION, toolchain.name, toolchain.version,
                        [(name, hashlib.sha256(text.encode()).hexdigest(), label) for name, text, label in programs])
        self._examples = None

    def examples(self):
        from ncc.fileio import atomic_write
        from ncc.frontend import compile_batch
        from ncc.graph import build
        from ncc.tasks.datasets import Example

        if self._examples is not None:
            return self._examples
        paths = []
        for name, text, _ in self.programs:
            path = self.folder / f"{name}.c"
            if not path.exists() or path.read_text() != text:
                atomic_write(path, text)
            paths.append(path)
        result = compile_batch(paths, opt_level=0, workers=self.workers, cache_dir=self.ir_cache,
                               progress=self.progress, clang=self.toolchain)
        if result.failures:
            failure = result.failures[0]
            raise DatasetError(f"{len(result.failures)} generated programs did not compile, first: {failure.reason}",
                               failure.path)
        examples = []
        for (name, _, label), module in zip(self.programs, result.modules()):
            graph = build(module, name=name)
            if has_loop(graph) != bool(label):
                raise DatasetError(f"generated program labelled {label} but its control flow says otherwise",
                                   str(self.folder / f"{name}.c"))
            examples.append(Example(graph, label, name=name))
        self._examples = examples
        return examples


class LoopsTask(Task):
    """Binary graph classification: does the program contain a loop? See the module docstring."""

    name = "loops"
    description = "does a generated C program contain a loop? (sanity task, seconds on CPU)"
    options_class = LoopsOptions
    level = "graph"
    metric_names = ("accuracy", "f1", "loss")
    monitor = "accuracy"

    def prepare(self, config: "TrainConfig", progress: bool = True, encoder: Any = None) -> TaskData:
        """Generate, compile and build the programs (all cached) and make the three splits.

        The node vocabulary is fitted on the training split only and cached by the training split's key
        and ``data.min_count``.
        """
        from ncc.embeddings.node_vocabulary import NodeVocabulary
        from ncc.frontend import find_toolchain
        from ncc.tasks.datasets import ProgramGraphDataset, split_indices

        options = self.check_options(config.task_options)
        if config.data.features == "inst2vec":
            raise ConfigError("data.features: the loops task reads node texts only; use text or auto")
        root = (Path(config.data.cache_dir) if config.data.cache_dir else cache_home()) / "loops"
        programs = generate_programs(options)
        train_fraction = 1.0 - options.val_fraction - options.test_fraction
        parts = split_indices(len(programs), [train_fraction, options.val_fraction, options.test_fraction],
                              seed=options.seed)
        toolchain = find_toolchain()
        workers = config.data.workers or None
        sources = {split: _GeneratedSource([programs[i] for i in indices], root / "sources", root / "ir", toolchain,
                                           workers, progress)
                   for split, indices in zip(("train", "val", "test"), parts)}
        vocabulary_path = root / f"vocabulary-{_sha(sources['train'].key, config.data.min_count)[:24]}.json"
        if encoder is not None:
            vocabulary = encoder
        elif vocabulary_path.exists():
            vocabulary = NodeVocabulary.load(vocabulary_path)
        else:
            graphs = [example.graph for example in sources["train"].examples()]
            vocabulary = NodeVocabulary(min_count=config.data.min_count).fit(graphs)
            vocabulary.save(vocabulary_path)
        splits = {split: ProgramGraphDataset(root, source, vocabulary, name=split, progress=progress)
                  for split, source in sources.items()}
        info = {split: {"graphs": len(data), "with_loop": int(data.labels.sum()),
                        "nodes_mean": float(np.mean(data.num_nodes_per_graph))} for split, data in splits.items()}
        info["vocabulary"] = len(vocabulary)
        return TaskData(splits=splits, encoder=vocabulary, num_classes=2, info=info)

    def dataset_from_path(self, path: str | Path, encoder: Any, config: "TrainConfig", progress: bool = True):
        """Sources (compiled at -O0) or IR files under ``path``, labelled by :func:`has_loop`."""
        from ncc.frontend import IR_EXTENSIONS, SOURCE_EXTENSIONS, compile_batch, expand_inputs, load
        from ncc.graph import build
        from ncc.tasks.datasets import Example, ExampleSource, ProgramGraphDataset

        files = expand_inputs([str(path)], extensions=(*SOURCE_EXTENSIONS, *IR_EXTENSIONS))
        ir_files = [f for f in files if f.suffix.lower() in IR_EXTENSIONS]
        sources = [f for f in files if f.suffix.lower() not in IR_EXTENSIONS]
        cache = (Path(config.data.cache_dir) if config.data.cache_dir else cache_home())
        modules = [load(f) for f in ir_files]
        if sources:
            result = compile_batch(sources, opt_level=0, cache_dir=cache / "loops" / "ir", progress=progress)
            for failure in result.failures:
                logger.warning("skipped %s: %s", failure.path, failure.reason)
            modules += list(result.modules())
        if not modules:
            raise NccError("no programs to evaluate", str(path))
        examples = []
        for module in modules:
            graph = build(module)
            examples.append(Example(graph, int(has_loop(graph)), name=module.name))
        return ProgramGraphDataset(cache / "loops" / "external", ExampleSource(examples), encoder, name="files",
                                   progress=progress)
