"""ncc: neural code comprehension over LLVM IR.

Commands:

    ncc doctor                                  toolchain, LLVM and library versions in use
    ncc compile SRC... -o DIR                   C / C++ / OpenCL sources to LLVM IR (.ll), cached
    ncc graph INPUT... -o DIR --format FMT      sources or .ll/.bc files to program graphs
    ncc embed CORPUS... -o DIR                  train inst2vec statement embeddings on a corpus

INPUT and SRC may be files, directories (searched recursively) or glob patterns. The compiler is the
clang that ships with the `ziglang` package unless --clang or $NCC_CLANG names another (clang >= 14).
Errors are one line each; the exit status is 1 when nothing could be done.
"""

from __future__ import annotations

import logging
import sys

import click

from ncc.errors import NccError

_clang_option = click.option("--clang", envvar="NCC_CLANG", default=None,
                             help="clang to use instead of ziglang's (also $NCC_CLANG).")
_workers_option = click.option("--workers", "-j", type=click.IntRange(min=1), default=1, show_default=True,
                               help="Processes to run in parallel.")
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

    for key, value in doctor_report(clang).items():
        click.echo(f"{key:>20}: {value}")


@cli.command("compile")
@click.argument("sources", nargs=-1, required=True)
@click.option("--output", "-o", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the .ll files.")
@click.option("--language", type=click.Choice(["c", "c++", "opencl"]), default=None,
              help="Language of every source (default: from the extension).")
@_opt_option
@_flag_option
@_workers_option
@_clang_option
def compile_command(sources, output_dir, language, opt_level, flags, workers, clang) -> None:
    """Compile C, C++ and OpenCL sources to LLVM IR."""
    from ncc.frontend.batch import compile_batch, expand_inputs
    from ncc.frontend.compile import SOURCE_EXTENSIONS

    files = expand_inputs(sources, extensions=SOURCE_EXTENSIONS)
    result = compile_batch(files, language=language, opt_level=opt_level, flags=flags, workers=workers,
                           clang=clang, output_dir=output_dir)
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
@_clang_option
def graph(inputs, output_dir, fmt, opt_level, flags, workers, clang) -> None:
    """Build program graphs from sources or LLVM IR files."""
    from ncc.graph.batch import build_batch

    result = build_batch(inputs, output_dir, fmt=fmt, workers=workers, opt_level=opt_level, flags=flags,
                         clang=clang)
    if len(result.written) <= 10:
        for _, output, summary in result.written:
            click.echo(f"{output}: {summary}")
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
@click.option("--backend", type=click.Choice(["gensim", "torch"]), default="gensim", show_default=True)
@_opt_option
@_workers_option
@_clang_option
def embed(corpus, output_dir, context_size, dim, epochs, min_count, vocabulary, backend, opt_level, workers, clang):
    """Train inst2vec embeddings on sources or LLVM IR files."""
    from ncc.embeddings.train import embed as train_embeddings

    result = train_embeddings(corpus, output_dir, context_size=context_size, dim=dim, epochs=epochs,
                              min_count=min_count, vocabulary=vocabulary, backend=backend, workers=workers,
                              clang=clang, opt_level=opt_level)
    _report(f"{output_dir}: {result.summary()}", result.failures, succeeded=result.report["corpus"]["modules"])


def _report(summary: str, failures, succeeded: int) -> None:
    """Print the failures (one line each) and the summary; exit 1 when nothing succeeded."""
    for failure in failures:
        reason = failure.reason if str(failure.path) in failure.reason else f"{failure.path}: {failure.reason}"
        click.echo(f"failed: {reason}", err=True)
    click.echo(summary)
    if succeeded == 0:
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ncc`` console script: errors become one line on stderr and exit status 1."""
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
