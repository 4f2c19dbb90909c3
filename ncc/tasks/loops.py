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

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any


from ncc.errors import DatasetError, NccError
from ncc.graph import ProgramGraph
from ncc.graph.analysis import has_loop
from ncc.paths import cache_home
from ncc.training.generated import GeneratedOptions, GeneratedProgramsTask

if TYPE_CHECKING:  # pragma: no cover
    from ncc.training.config import TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["LoopsOptions", "LoopsTask"]


@dataclass(frozen=True)
class LoopsOptions(GeneratedOptions):
    """Options of the loops task (the ``[task]`` table of a configuration); see :class:`GeneratedOptions`."""


class LoopsTask(GeneratedProgramsTask):
    """Binary graph classification: does the program contain a loop? See the module docstring."""

    name = "loops"
    description = "does a generated C program contain a loop? (sanity task, seconds on CPU)"
    options_class = LoopsOptions
    level = "graph"
    metric_names = ("accuracy", "f1", "loss")
    monitor = "accuracy"

    def make_examples(self, options: LoopsOptions, name: str, graph: ProgramGraph, has_loop_: int) -> list:
        """The one example of a generated program, its label checked against its control flow."""
        from ncc.training.datasets import Example

        if has_loop(graph) != bool(has_loop_):
            raise DatasetError(f"generated program labelled {has_loop_} but its control flow says otherwise", name)
        return [Example(graph, has_loop_, name=name)]

    def split_info(self, dataset) -> dict:
        return {**super().split_info(dataset), "with_loop": int(dataset.labels.sum())}

    def dataset_from_path(self, path: str | Path, encoder: Any, config: "TrainConfig", progress: bool = True):
        """Sources (compiled at -O0) or IR files under ``path``, labelled by :func:`has_loop`."""
        from ncc.frontend import IR_EXTENSIONS, SOURCE_EXTENSIONS, compile_batch, expand_inputs, load
        from ncc.graph import build
        from ncc.training.datasets import Example, ExampleSource, ProgramGraphDataset

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
