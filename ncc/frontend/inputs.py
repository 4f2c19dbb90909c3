"""Command-line inputs: files, folders and glob patterns to a file list, and where each file's output goes.

The output rule never looks at the other inputs: an input's output is its path relative to the current
folder with the last extension replaced (``ir/a.O2.ll`` -> ``OUT/ir/a.O2.json``). An input outside the
current folder keeps its path below the folder that holds the argument naming it: a file its name, a
folder argument its own name and the path below it, a glob match its path below the pattern's fixed part.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True)
class InputFile:
    """A file to read, and its output's path below an output folder, without the extension.

    Attributes:
        path: the file, as found.
        relative: e.g. ``ir/a.O2`` for ``ir/a.O2.ll``.
    """

    path: Path
    relative: Path

    @classmethod
    def named(cls, path: str | os.PathLike) -> "InputFile":
        """A file named on its own: its output follows its path relative to the current folder, else its name."""
        path = Path(path)
        return cls(path, _strip_suffix(_relative_to_cwd(path, path.parent)))

    def output(self, folder: str | os.PathLike, suffix: str) -> Path:
        """The output file of this input under ``folder``: ``folder/relative`` + ``suffix``."""
        return Path(folder) / (str(self.relative) + suffix)


@dataclass(frozen=True)
class BatchFailure:
    """An input that gave no output, and why.

    Attributes:
        path: the input (a file, or an argument that named none).
        reason: one line, e.g. ``no such file or directory`` or ``clang exited with status 1: x.c:3:1: error: ...``.
        diagnostics: the tail of clang's stderr (empty for other failures).
    """

    path: str
    reason: str
    diagnostics: str = ""


@dataclass
class Inputs:
    """What :func:`gather_inputs` found: the files in argument order, and the arguments that gave none."""

    files: list[InputFile] = field(default_factory=list)
    problems: list[BatchFailure] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [item.path for item in self.files]


def extension_list(extensions: Iterable[str]) -> str:
    """``.c .cpp ...`` in a fixed order, for messages."""
    return " ".join(sorted(set(extensions), key=lambda e: (e in (".ll", ".bc"), e)))


def _outside(relative: str) -> bool:
    return relative == ".." or relative.startswith(".." + os.sep) or os.path.isabs(relative)


def _relative_to_cwd(path: Path, base: Path) -> Path:
    """``path`` relative to the current folder, else relative to ``base`` (the folder holding the argument)."""
    text = os.path.normpath(path)
    if os.path.isabs(text):
        try:
            text = os.path.relpath(text, os.getcwd())
        except ValueError:  # another drive
            pass
    if not _outside(text):
        return Path(text)
    return Path(os.path.relpath(os.path.normpath(path), os.path.normpath(base)))


def _glob_base(pattern: str) -> Path:
    """The fixed folder of a pattern: ``src/x`` for ``src/x/**/*.c``."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _strip_suffix(path: Path) -> Path:
    return path.with_suffix("") if path.suffix else path


def gather_inputs(arguments: Iterable[str | os.PathLike], extensions: Iterable[str],
                  what: str = "source or IR file", named: Iterable[str] = (), any_named_file: bool = False) -> Inputs:
    """Expand files, folders (searched recursively) and glob patterns into input files.

    A missing path, a folder or pattern with no file of ``extensions``, and a file named with another
    extension are problems, listed in argument order; the other arguments still give their files.

    Args:
        arguments: paths, folders or patterns (``src/**/*.c``).
        extensions: the extensions read, with the dot.
        what: what the files are called in messages.
        named: more extensions kept for files named explicitly or by a pattern, not searched for in folders.
        any_named_file: keep a file named explicitly whatever its extension (``--language`` decides).
    """
    wanted = {extension.lower() for extension in extensions}
    also = wanted | {extension.lower() for extension in named}
    listed = extension_list(wanted)
    found = Inputs()
    seen: set[Path] = set()

    def add(path: Path, relative: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.files.append(InputFile(path, _strip_suffix(relative)))

    for argument in arguments:
        path = Path(argument)
        if path.is_file():
            if path.suffix.lower() in also or any_named_file:
                add(path, _relative_to_cwd(path, path.parent))
            else:
                reason = f"unknown extension {path.suffix!r}" if path.suffix else "no extension"
                found.problems.append(BatchFailure(str(argument), f"{reason}: ncc reads {listed}"))
        elif path.is_dir():
            matches = [item for item in sorted(path.rglob("*")) if item.is_file() and item.suffix.lower() in wanted]
            if not matches:
                found.problems.append(BatchFailure(str(argument), f"no {what} found in this folder ({listed})"))
            for item in matches:
                add(item, _relative_to_cwd(item, path.parent))
        elif glob.has_magic(str(argument)):
            matches = sorted(Path(match) for match in glob.glob(str(argument), recursive=True))
            kept = [match for match in matches if match.is_file() and match.suffix.lower() in also]
            if not kept:
                found.problems.append(BatchFailure(str(argument), f"pattern matches no {what} ({listed})"))
            base = _glob_base(str(argument))
            for match in kept:
                add(match, _relative_to_cwd(match, base))
        else:
            found.problems.append(BatchFailure(str(argument), "no such file or directory"))
    return found


def claim_outputs(files: Iterable[InputFile], folder: str | os.PathLike, suffix: str
                  ) -> tuple[dict[Path, Path], list[BatchFailure]]:
    """Each input's output file under ``folder``; an input whose output another input already claims is a problem."""
    outputs: dict[Path, Path] = {}
    owners: dict[Path, Path] = {}
    problems = []
    for item in files:
        output = item.output(folder, suffix)
        if output in owners:
            problems.append(BatchFailure(str(item.path), f"its output {output} is also {owners[output]}'s; "
                                                         "rename one, or run them separately"))
            continue
        owners[output] = item.path
        outputs[item.path] = output
    return outputs, problems
