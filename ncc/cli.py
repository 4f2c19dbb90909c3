"""ncc: neural code comprehension over LLVM IR.

Commands:

\b
    ncc doctor                                  toolchain, LLVM and library versions in use
    ncc compile SRC... -o DIR                   C / C++ / OpenCL sources to LLVM IR (.ll), cached
    ncc graph INPUT... -o DIR --format FMT      sources or .ll/.bc files to program graphs
    ncc profile SRC... -o DIR                   run C/C++ programs with edge counters; graphs with counts
    ncc embed CORPUS... -o DIR                  train inst2vec statement embeddings on a corpus
    ncc train TASK --model NAME [--config FILE] train a model on a task (loops, dataflow, devmap,
                                                threadcoarsening, classifyapp)
    ncc evaluate CHECKPOINT [DATA]...           metrics of a trained model on splits or on files
    ncc reproduce TASK                          run the rows of a paper table and print it
                                                (dataflow, devmap, threadcoarsening, classifyapp)

Training runs on the GPU when there is one (mixed precision), else the CPU; under
`torchrun --nproc_per_node N $(which ncc) train ...` it runs data-parallel over N processes.

INPUT and SRC may be files, directories (searched recursively) or glob patterns. The compiler is the
clang that ships with the `ziglang` package unless --clang or $NCC_CLANG names another (clang >= 14).
Errors are one line each; the exit status is 1 when nothing could be done.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import click

from ncc import plural
from ncc.errors import NccError

_clang_option = click.option("--clang", envvar="NCC_CLANG", default=None,
                             help="clang to use instead of ziglang's (also $NCC_CLANG).")
_workers_option = click.option("--workers", "-j", type=click.IntRange(min=1), default=1, show_default=True,
                               help="Processes to run in parallel.")
_executor_option = click.option("--executor", default="local", show_default=True, envvar="NCC_EXECUTOR",
                                help="Where the batch runs: local (a process pool of --workers), dask (a local "
                                     "Dask cluster of --workers processes, or $DASK_SCHEDULER_ADDRESS), or a Dask "
                                     "scheduler address (tcp://host:8786). Also $NCC_EXECUTOR.")
_opt_option = click.option("-O", "opt_level", type=click.Choice(["0", "1", "2", "3", "s", "z"]), default="0",
                           show_default=True, help="Optimisation level for sources.")
_flag_option = click.option("--flag", "-X", "flags", multiple=True, help="Extra clang flag (repeatable).")


@click.group(help=__doc__)
@click.version_option(package_name="ncc")
@click.option("--verbose", "-v", is_flag=True, help="Log what happens.")
def cli(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")


@cli.command()
@_clang_option
def doctor(clang: str | None) -> None:
    """Print the toolchain, LLVM and library versions in use."""
    from ncc.frontend.toolchain import doctor_report
    from ncc.paths import cache_home, data_home_and_rule

    data, rule = data_home_and_rule()
    report = {**doctor_report(clang), "data_dir": f"{data} ({rule})",
              "cache_dir": f"{cache_home()} ({'$NCC_CACHE' if os.environ.get('NCC_CACHE') else 'default; $NCC_CACHE unset'})"}
    for key, value in report.items():
        click.echo(f"{key:>21}: {value}")


@cli.command("compile")
@click.argument("sources", nargs=-1, required=True)
@click.option("--output", "-o", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the .ll files.")
@click.option("--language", type=click.Choice(["c", "c++", "opencl"]), default=None,
              help="Language of every source (default: from the extension).")
@_opt_option
@_flag_option
@_workers_option
@_executor_option
@_clang_option
def compile_command(sources, output_dir, language, opt_level, flags, workers, executor, clang) -> None:
    """Compile C, C++ and OpenCL sources to LLVM IR.

    Each .ll file mirrors its source's path relative to the current folder: src/x/a.O2.c gives
    OUT/src/x/a.O2.ll, whatever the other sources. A source outside the current folder keeps its path
    below the folder holding the argument that named it.
    """
    from ncc.frontend.batch import BatchFailure, compile_batch
    from ncc.frontend.compile import SOURCE_EXTENSIONS
    from ncc.frontend.inputs import gather_inputs
    from ncc.frontend.load import IR_EXTENSIONS

    found = gather_inputs(sources, SOURCE_EXTENSIONS, what="source file", named=IR_EXTENSIONS,
                          any_named_file=language is not None)
    problems = list(found.problems)
    if not found.files:
        _report(f"0/{len(problems)} compiled, {len(problems)} failed", problems, succeeded=0)
    result = compile_batch(found.files, language=language, opt_level=opt_level, flags=flags, workers=workers,
                           clang=clang, output_dir=output_dir, executor=executor)
    result.failures[:0] = problems
    _report(result.summary(), result.failures, succeeded=len(result.entries))


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--output", "-o", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the graph files.")
@click.option("--format", "fmt", type=click.Choice(["json", "npz", "networkx", "pyg", "dot"]), default="json",
              show_default=True, help="json/npz: ncc's exact formats; networkx: node-link JSON; pyg: torch "
                                      "Data (.pt); dot: Graphviz.")
@_opt_option
@_flag_option
@_workers_option
@_executor_option
@_clang_option
def graph(inputs, output_dir, fmt, opt_level, flags, workers, executor, clang) -> None:
    """Build program graphs from sources or LLVM IR files.

    Each graph mirrors its input's path relative to the current folder, the last extension replaced:
    ir/a.O2.ll gives OUT/ir/a.O2.json, whatever the other inputs. An input outside the current folder
    keeps its path below the folder holding the argument that named it.
    """
    from ncc.graph.batch import build_batch

    result = build_batch(inputs, output_dir, fmt=fmt, workers=workers, opt_level=opt_level, flags=flags,
                         clang=clang, executor=executor)
    if len(result.written) <= 10:
        for _, output, summary in result.written:
            click.echo(f"{output}: {summary}")
    _report(result.summary(), result.failures, succeeded=len(result.written))


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--output", "-o", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the annotated graphs.")
@click.option("--format", "fmt", type=click.Choice(["json", "npz", "networkx", "pyg", "dot"]), default="json",
              show_default=True, help="As for ncc graph; the counts go in metadata, tensors (pyg) or labels (dot).")
@click.option("--time-limit", type=click.FloatRange(min=0.01), default=10.0, show_default=True,
              help="Seconds each run may take.")
@click.option("--memory-limit", type=click.IntRange(min=16), default=2048, show_default=True,
              help="MiB of address space per run.")
@click.option("--output-limit", type=click.IntRange(min=1), default=64, show_default=True,
              help="MiB a run may write (per file, and in all).")
@_opt_option
@_flag_option
@_workers_option
@_clang_option
def profile(sources, output_dir, fmt, time_limit, memory_limit, output_limit, opt_level, flags, workers,
            clang) -> None:
    """Run C/C++ programs with edge counters and write their graphs annotated with the counts.

    Each program is compiled (or read as .ll/.bc), instrumented, linked with ncc's clang and run twice, plain
    and instrumented, in a scratch folder under the limits. A program that does not build, crashes, times out,
    exits with a non-zero status or prints other than its <stem>.reference_output is listed as a failure
    (arguments: the set(RUN_OPTIONS ...) of a CMakeLists.txt beside it, as llvm-test-suite runs it).
    Graphs carry node_count, branch_taken, branch_not_taken and edge_count; outputs mirror the inputs' paths.
    """
    from ncc.execution.batch import profile_batch
    from ncc.execution.sandbox import Limits

    limits = Limits(time_s=time_limit, memory_bytes=memory_limit << 20, output_bytes=output_limit << 20)
    result = profile_batch(sources, output_dir, fmt=fmt, workers=workers, opt_level=opt_level, flags=flags,
                           clang=clang, limits=limits)
    if len(result.written) <= 10:
        for program in result.written:
            click.echo(f"{program.output}: {program.summary}")
    _report(result.summary(), result.failures, succeeded=len(result.written))


@cli.command()
@click.argument("corpus", nargs=-1, required=True)
@click.option("--output", "-o", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for vocabulary.json, embeddings.npy, embeddings.json and report.json.")
@click.option("--context-size", type=click.IntRange(1, 3), default=2, show_default=True, help="XFG context distance.")
@click.option("--dim", type=click.IntRange(min=1), default=200, show_default=True, help="Embedding dimension.")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True, help="Passes over the pairs.")
@click.option("--min-count", type=click.IntRange(min=1), default=1, show_default=True,
              help="Rarer statements become !UNK (fitted vocabulary only).")
@click.option("--vocabulary", type=click.Choice(["fit", "published"]), default="fit", show_default=True,
              help="Fit on the corpus, or NCC's published 8,565 statements.")
@click.option("--backend", type=click.Choice(["dense", "gensim", "torch"]), default="dense", show_default=True,
              help="dense: expected skip-gram loss over pair counts (fast); gensim: word2vec on the pairs; "
                   "torch: sampled SGNS, on a GPU when there is one.")
@_opt_option
@_workers_option
@_clang_option
def embed(corpus, output_dir, context_size, dim, epochs, min_count, vocabulary, backend, opt_level, workers, clang):
    """Train inst2vec embeddings on sources or LLVM IR files."""
    from ncc.embeddings.train import embed as train_embeddings

    result = train_embeddings(corpus, output_dir, context_size=context_size, dim=dim, epochs=epochs,
                              min_count=min_count, vocabulary=vocabulary, backend=backend, workers=workers,
                              clang=clang, opt_level=opt_level)
    if result.hint:
        click.echo(f"note: {result.hint}", err=True)
    _report(f"{output_dir}: {result.summary()}", result.failures, succeeded=result.report["corpus"]["modules"])


class _TaskCommand(click.Command):
    """A command whose help ends with what the task registry offers (read only when help is shown)."""

    def __init__(self, *args, listing=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.listing = listing

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from ncc.training import get_task, task_names

        with formatter.section("Tasks"):
            formatter.write_dl([(name, self.listing(get_task(name))) for name in task_names()])
        super().format_epilog(ctx, formatter)


def _models_of(task) -> str:
    from ncc.models import MODELS

    return f"{task.description}; models: {', '.join(MODELS)}"


def _rows_of(task) -> str:
    if not task.rows:
        return "no table"
    parts = [f"rows {', '.join(task.rows)} (default: {', '.join(task.fast_rows)})"]
    parts += [f"{kind} {', '.join(values)}" for kind, values in (("platforms", task.platforms),
                                                                 ("protocols", task.protocols)) if values]
    return "; ".join(parts)


@cli.command("train", cls=_TaskCommand, listing=_models_of)
@click.argument("task")
@click.option("--model", "-m", "model", default=None, help="Model name (ggnn, lstm, rgine, ...).")
@click.option("--config", "-c", "config_file", type=click.Path(dir_okay=False), default=None, help="TOML config.")
@click.option("--epochs", type=int, default=None,
              help="Passes over the training split (default: the task's own count, else 20).")
@click.option("--lr", type=float, default=None, help="Learning rate.")
@click.option("--batch-size", type=int, default=None, help="Graphs per process and step.")
@click.option("--node-budget", type=int, default=None, help="Nodes per process and step instead (0: off).")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=None, help="Seed of initialisation and shuffling.")
@click.option("--output", "-o", default=None, help="Run folder (checkpoints, logs, report.json).")
@click.option("--resume", is_flag=True, default=None, help="Continue the run in --output.")
@click.option("--platform", default=None, help="The task's platform (devmap: amd, nvidia; threadcoarsening: "
              "cypress, tahiti, fermi, kepler).")
@click.option("--analysis", default=None, help="dataflow: reachability, dominance, datadep, liveness or "
              "subexpressions.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Any other setting, e.g. model.steps=4 or task.protocol=published (repeatable).")
def train_command(task, model, config_file, epochs, lr, batch_size, node_budget, device, seed, output, resume,
                  platform, analysis, settings):
    """Train a model on a task; writes checkpoints, TensorBoard logs and report.json.

    devmap and threadcoarsening cross-validate: every fold is a run of its own under --output, and
    finished folds are kept, so running the same command again continues where it stopped.
    """
    from ncc.training import get_task, load_config
    from ncc.training.config import parse_value

    overrides = {"task": task, "model.name": model, "epochs": epochs, "optimizer.lr": lr,
                 "data.batch_size": batch_size, "data.node_budget": node_budget, "device": device, "seed": seed,
                 "output": output, "resume": resume, "task.platform": platform,
                 "task.analysis": analysis}
    for setting in settings:
        key, _, value = setting.partition("=")
        overrides[key.strip()] = parse_value(value.strip())
    config = load_config(config_file, overrides)
    result = get_task(config.task).train(config)
    click.echo(_metrics_line(f"{result.pop('output')}:", result))


@cli.command("evaluate")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.argument("data", nargs=-1)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Graphs per batch.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (a list for several DATA).")
def evaluate_command(checkpoint, data, device, batch_size, as_json):
    """Metrics of a checkpoint on splits of its task (default test) or on files: one line per DATA.

    CHECKPOINT is a best.pt / checkpoint.pt that ncc train wrote, or its run folder. Each DATA is a split
    name (train, val, test) or a file, folder or pattern of inputs the task can label.
    """
    import json
    from pathlib import Path

    _check_checkpoint(Path(checkpoint))
    from ncc.training import evaluate
    from ncc.training.trainer import load_checkpoint

    payload = load_checkpoint(checkpoint)
    results = [evaluate(payload, target, device=device, batch_size=batch_size or 0) for target in data or [None]]
    if as_json:
        click.echo(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return
    for result in results:
        click.echo(_metrics_line(f"{result['data']}: {plural(result['graphs'], 'graph')};", {"": result["metrics"]}))


def _check_checkpoint(path) -> None:
    """Refuse, in words, a file that is not a checkpoint, before torch reads it (its errors speak of pickle)."""
    import zipfile

    file = path / "best.pt" if path.is_dir() else path
    if file.is_file() and not zipfile.is_zipfile(file):
        raise NccError("not an ncc checkpoint (give the best.pt or checkpoint.pt that ncc train wrote, or its run "
                       "folder)", str(file))


@cli.command("reproduce", cls=_TaskCommand, listing=_rows_of)
@click.argument("task")
@click.option("--models", default=None,
              help="Comma-separated rows, or 'all' (default: the rows that finish on a CPU in minutes).")
@click.option("--platform", "platforms", multiple=True,
              help="Only these platforms, or for dataflow these analyses (repeatable).")
@click.option("--protocol", "protocols", multiple=True,
              help="devmap: published and/or grouped (repeatable; default both); classifyapp: quick (default) or "
                   "full; dataflow: quick (default) or corpus.")
@click.option("--classes", type=click.IntRange(2, 104), default=None, help="classifyapp: use POJ-104 labels 1..N.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="Seeds per row (0, 1, ...).")
@click.option("--source", type=click.Choice(["original", "ncc-ir", "normalised"]), default=None,
              help="devmap, threadcoarsening: kernel IR from ncc-compiled originals (default), NCC's 2018 IR, or "
                   "the normalised sources.")
@click.option("--transfer", type=click.Choice(["published", "merged"]), default=None,
              help="devmap: transfer sizes as published (default), or merged per program and input size (the "
                   "published ones leak the label in NPB; see ncc.tasks.devmap.merge_transfer).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs of the neural rows.")
@click.option("--folds", default=None, help="Comma-separated fold numbers to run (a quick look; default all).")
@click.option("--output", "-o", default=None, help="Folder for runs and the table (default results/TASK).")
@_workers_option
@_clang_option
def reproduce_command(task, models, platforms, protocols, classes, seeds, source, transfer, epochs, folds, output,
                      workers, clang):
    """Run every row of the TASK's table on the same folds, print it, and save it as CSV and Markdown.

    Finished folds (and training runs) are kept under --output, so an interrupted run continues where it stopped.
    """
    from pathlib import Path

    from ncc.training import TableRequest, get_task

    runner = get_task(task)
    try:
        fold_list = None if folds is None else [int(f) for f in folds.split(",")]
    except ValueError:
        raise click.UsageError(f"--folds: expected comma-separated numbers, got {folds!r}") from None
    options = {key: value for key, value in (("source", source), ("transfer", transfer), ("classes", classes))
               if value is not None}
    request = TableRequest(rows=runner.select_rows(models), seeds=list(range(seeds)), platforms=platforms,
                           protocols=protocols, epochs=epochs, folds=fold_list, workers=workers, clang=clang,
                           options=options)
    output = Path(output or f"results/{task}")
    result = runner.reproduce(output, request)
    click.echo(result.markdown.read_text(), nl=False)
    for note in result.notes:
        click.echo(note)
    click.echo(f"saved: {result.csv}, {result.markdown}")


def _metrics_line(head: str, metrics: dict) -> str:
    """``head`` and the ``name value`` pairs of a mapping whose values are numbers or ``{metric: value}`` tables."""
    def text(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    parts = [f"{split} {name} {text(value)}".strip() for split, values in metrics.items() if isinstance(values, dict)
             for name, value in values.items() if isinstance(value, (int, float))]
    parts += [f"{name} {text(value)}" for name, value in metrics.items() if isinstance(value, (int, float))]
    return f"{head} {', '.join(parts)}"


def _report(summary: str, failures, succeeded: int) -> None:
    """Print the failures (one line each) and the summary; exit 1 when nothing succeeded."""
    for failure in failures:
        reason = failure.reason if str(failure.path) in failure.reason else f"{failure.path}: {failure.reason}"
        click.echo(f"failed: {reason}", err=True)
    click.echo(summary)
    if succeeded == 0:
        sys.exit(1)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (``kill``, ``timeout``, a scheduler ending a job) stops ncc as Ctrl-C does: training keeps its
    last checkpoint and tables list what is unfinished. Worker processes keep the default action."""
    main_pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() != main_pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ncc`` console script: errors become one line on stderr and exit status 1."""
    _interrupt_on_sigterm()
    try:
        cli.main(args=argv, prog_name="ncc", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except NccError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
