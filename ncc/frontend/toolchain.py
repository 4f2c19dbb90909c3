"""Finding a clang and turning a compile request into its command line.

The default toolchain is the clang inside the PyPI package ``ziglang`` (clang 22, the same LLVM as
llvmlite), so a pip-only install compiles C, C++ and OpenCL. A system clang (version 14 or newer) is
used when the user names one, through the ``clang=`` argument of the frontend functions or the
environment variable ``NCC_CLANG`` (a path or a name on ``$PATH``).

How each language is compiled:

* ziglang, C and C++: ``zig cc`` / ``zig c++ -target x86_64-linux-gnu -g0 -fno-sanitize=all``, which
  brings zig's own libc and libc++ headers.
* ziglang, OpenCL: ``zig clang -cc1 -triple spir64 -x cl -cl-std=CL1.2 -fdeclare-opencl-builtins
  -include opencl_shim.h``. Zig ships no ``opencl-c.h``; the builtin functions come from clang's
  ``-fdeclare-opencl-builtins`` and the types and macros from the shim in ``ncc/frontend/include``.
* system clang: ``clang -x c|c++|cl -S -emit-llvm``; OpenCL with ``-target spir64 -cl-std=CL1.2`` and
  clang's own default OpenCL header.

Where the time goes, and how ncc spends less of it (ziglang, C and C++): ``zig c++`` is a driver that
works out the target, the libc and libc++ include paths and ~450 ``-cc1`` arguments, looks the compile up
in zig's own cache (``~/.cache/zig``, which keeps a copy of every output it ever made), runs clang's
``-cc1`` and copies the result out. Per POJ-104 program that driver cost about as much CPU as clang's own
work. :func:`cc1_template` asks the driver once per setting (``-###``) which ``-cc1`` command it would
run, checks that only the file names and folders vary between two such answers, and the frontend then
runs ``zig -cc1`` with that command directly: the same clang, the same arguments, byte-identical IR
(tested on real POJ-104 programs), no zig cache.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ncc.errors import ToolchainError

logger = logging.getLogger(__name__)

#: Languages the frontend compiles, with the ``-x`` name clang uses for each.
CLANG_LANGUAGE_NAMES = {"c": "c", "c++": "c++", "opencl": "cl"}

#: Oldest system clang accepted.
MINIMUM_CLANG_MAJOR = 14

#: Headers shipped with ncc (the OpenCL shim, the POJ-104 prelude).
INCLUDE_DIR = Path(__file__).resolve().parent / "include"
OPENCL_SHIM_HEADER = INCLUDE_DIR / "opencl_shim.h"

_ZIG_C_TARGET_FLAGS = ("-target", "x86_64-linux-gnu", "-g0", "-fno-sanitize=all")
_OPENCL_FLAGS = ("-cl-std=CL1.2",)


@dataclass(frozen=True)
class Toolchain:
    """A clang that ncc can run.

    Attributes:
        kind: ``ziglang`` (clang inside the ziglang package) or ``system``.
        path: the executable (``zig`` for ziglang, else the clang binary).
        version: e.g. ``clang 22.1.8``.
    """

    kind: str
    path: str
    version: str

    @property
    def major(self) -> int:
        """The clang major version number."""
        return int(self.version.split()[1].split(".")[0])

    @property
    def name(self) -> str:
        """What IRModule.toolchain records: ``ziglang`` or the clang path."""
        return "ziglang" if self.kind == "ziglang" else self.path

    def compile_arguments(self, language: str, opt_level: int | str, flags: tuple[str, ...] = ()) -> list[str]:
        """The arguments that compile one source of ``language`` to textual IR, without input/output paths.

        Args:
            language: ``c``, ``c++`` or ``opencl``.
            opt_level: 0-3, or ``s``/``z``.
            flags: extra clang flags (``-D``, ``-I``, ``-std=`` ...), appended last.

        Returns:
            The argument list that follows the executable.
        """
        if language not in CLANG_LANGUAGE_NAMES:
            raise ToolchainError(f"unsupported language {language!r}; expected one of {sorted(CLANG_LANGUAGE_NAMES)}")
        optimisation = f"-O{opt_level}"
        if self.kind == "ziglang":
            if language == "opencl":
                return ["clang", "-cc1", "-triple", "spir64", "-emit-llvm", optimisation, "-x", "cl",
                        *_OPENCL_FLAGS, "-fdeclare-opencl-builtins", "-discard-value-names",
                        "-include", str(OPENCL_SHIM_HEADER), *flags]
            driver = "cc" if language == "c" else "c++"
            return [driver, *_ZIG_C_TARGET_FLAGS, "-S", "-emit-llvm", optimisation,
                    "-Wno-unused-command-line-argument", "-x", CLANG_LANGUAGE_NAMES[language], *flags]
        if language == "opencl":
            return ["-S", "-emit-llvm", optimisation, "-g0", "-target", "spir64", "-x", "cl", *_OPENCL_FLAGS,
                    "-Xclang", "-finclude-default-header", *flags]
        return ["-S", "-emit-llvm", optimisation, "-g0", "-x", CLANG_LANGUAGE_NAMES[language], *flags]

    def command(self, language: str, source: str, output: str, opt_level: int | str = 0,
                flags: tuple[str, ...] = ()) -> list[str]:
        """The full command line that compiles ``source`` to textual IR in ``output``."""
        return [self.path, *self.compile_arguments(language, opt_level, flags), source, "-o", output]

    def direct_command(self, language: str, source: str, output: str, work_dir: str, opt_level: int | str = 0,
                       flags: tuple[str, ...] = ()) -> list[str]:
        """The command that does what :meth:`command` does, without the ``zig cc``/``zig c++`` driver.

        For ziglang C and C++ this is the ``zig -cc1`` command the driver itself would run (see
        :func:`cc1_template`); for everything else, and wherever the driver's answer cannot be turned
        into a template, it is :meth:`command`.

        Args:
            source: the source file's name inside ``work_dir`` (no folder).
            output: where the IR goes, relative to ``work_dir`` or absolute.
            work_dir: the folder the command runs in.
        """
        if self.kind != "ziglang" or language not in ("c", "c++"):
            return self.command(language, source, output, opt_level, flags)
        template = cc1_template(self, language, opt_level, flags)
        if template is None:
            return self.command(language, source, output, opt_level, flags)
        return template.fill(source, output, work_dir, flags)


#: Placeholders that stand for what varies between two compiles of one setting.
_PLACEHOLDER_SOURCE = "ncc-placeholder-source-{}"
_PLACEHOLDER_DIR = "ncc-placeholder-dir-{}"
_PLACEHOLDER_QUOTE_DIR = "/ncc-placeholder-iquote-{}-{}"


@dataclass(frozen=True)
class Cc1Template:
    """The ``-cc1`` command the ziglang driver runs for one setting, with holes for what varies.

    Attributes:
        executable: the ``zig`` binary.
        arguments: the ``-cc1`` arguments; ``{source}``, ``{output}`` and ``{work_dir}`` occur in some of
            them, and ``{quote0}``, ``{quote1}`` ... for the folders of the setting's ``-iquote`` flags.
    """

    executable: str
    arguments: tuple[str, ...]

    @functools.cached_property
    def _holes(self) -> tuple[int, ...]:
        return tuple(index for index, argument in enumerate(self.arguments, start=1) if "{" in argument)

    def fill(self, source: str, output: str, work_dir: str, flags: tuple[str, ...]) -> list[str]:
        """The command for one compile (``flags`` as given to :func:`cc1_template`, for the ``-iquote`` folders)."""
        values = {"source": source, "output": output, "work_dir": work_dir}
        values.update((f"quote{index}", folder) for index, folder in enumerate(_quote_dirs(flags)))
        command = [self.executable, *self.arguments]
        for index in self._holes:
            command[index] = command[index].format_map(values)
        return command


def _quote_dirs(flags: tuple[str, ...]) -> list[str]:
    return [flags[index + 1] for index in range(len(flags) - 1) if flags[index] == "-iquote"]


def _with_placeholder_quote_dirs(flags: tuple[str, ...], variant: str) -> tuple[str, ...]:
    replaced, count = list(flags), 0
    for index in range(len(flags) - 1):
        if flags[index] == "-iquote":
            replaced[index + 1] = _PLACEHOLDER_QUOTE_DIR.format(count, variant)
            count += 1
    return tuple(replaced)


_TEMPLATES: dict[tuple, Cc1Template | None] = {}
_TEMPLATES_LOCK = threading.Lock()


def cc1_template(toolchain: Toolchain, language: str, opt_level: int | str,
                 flags: tuple[str, ...] = ()) -> Cc1Template | None:
    """The ``-cc1`` command ``zig cc``/``zig c++`` would run for this setting, or None where it cannot tell.

    The driver is asked twice (``-###``), with different file names, folders and ``-iquote`` folders;
    the two answers must differ in exactly those places, which become the template's holes. Anything else
    (a driver that would run more than one command, an answer that depends on something else) gives None,
    and the caller runs the driver. Remembered per process for each setting, ``-iquote`` folders aside.

    Args:
        toolchain: a ziglang toolchain.
        language: ``c`` or ``c++``.
        opt_level, flags: as for :meth:`Toolchain.compile_arguments`.
    """
    shape = tuple("-iquote-folder" if index and flags[index - 1] == "-iquote" else flag
                  for index, flag in enumerate(flags))
    key = (toolchain, language, str(opt_level), shape)
    with _TEMPLATES_LOCK:
        if key in _TEMPLATES:
            return _TEMPLATES[key]
    try:
        template = _derive_cc1_template(toolchain, language, opt_level, flags)
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        logger.warning("cannot see the -cc1 command of zig's driver (%s); compiling through the driver", error)
        template = None
    if template is None:
        logger.warning("compiling %s through zig's driver: its -cc1 command could not be turned into a template",
                       language)
    with _TEMPLATES_LOCK:
        _TEMPLATES[key] = template
    return template


def _derive_cc1_template(toolchain: Toolchain, language: str, opt_level: int | str,
                         flags: tuple[str, ...]) -> Cc1Template | None:
    extension = ".c" if language == "c" else ".cpp"
    answers = []
    with tempfile.TemporaryDirectory(prefix="ncc-cc1-") as scratch:
        for variant in ("a", "b"):
            work_dir = Path(scratch, _PLACEHOLDER_DIR.format(variant))
            work_dir.mkdir()
            source = _PLACEHOLDER_SOURCE.format(variant) + extension
            (work_dir / source).write_text("")  # the driver wants the input to exist
            output = f"{_PLACEHOLDER_SOURCE.format(variant)}.ll"
            command = [toolchain.path, *toolchain.compile_arguments(
                language, opt_level, _with_placeholder_quote_dirs(flags, variant)), source, "-o", output, "-###"]
            completed = subprocess.run(command, cwd=work_dir, capture_output=True, text=True, timeout=60)
            jobs = [line for line in completed.stderr.splitlines() if line.startswith(" \"") and '"-cc1"' in line]
            if completed.returncode != 0 or len(jobs) != 1:
                logger.debug("zig -### gave %d -cc1 commands (status %d)", len(jobs), completed.returncode)
                return None
            answers.append((shlex.split(jobs[0]), source, output, str(work_dir)))
    (first, source_a, output_a, dir_a), (second, source_b, output_b, dir_b) = answers
    if len(first) != len(second) or first[1] != "-cc1" or first[-1] != source_a:
        return None
    count = len(_quote_dirs(flags))
    holes_a = [(dir_a, "{work_dir}"), (source_a, "{source}"),
               *((_PLACEHOLDER_QUOTE_DIR.format(index, "a"), f"{{quote{index}}}") for index in range(count))]
    holes_b = [(dir_b, "{work_dir}"), (source_b, "{source}"),
               *((_PLACEHOLDER_QUOTE_DIR.format(index, "b"), f"{{quote{index}}}") for index in range(count))]
    arguments: list[str] = []
    output_index = None
    for index, (argument_a, argument_b) in enumerate(zip(first[1:], second[1:]), start=1):
        if index > 1 and first[index - 1] == "-o":
            output_index = len(arguments)
            arguments.append("{output}")  # zig names its own cache file (or /dev/null under -###)
            continue
        escaped_a = argument_a.replace("{", "{{").replace("}", "}}")
        escaped_b = argument_b.replace("{", "{{").replace("}", "}}")
        for placeholder, hole in holes_a:
            escaped_a = escaped_a.replace(placeholder, hole)
        for placeholder, hole in holes_b:
            escaped_b = escaped_b.replace(placeholder, hole)
        if escaped_a != escaped_b:
            logger.debug("zig's -cc1 commands differ in more than names: %r / %r", argument_a, argument_b)
            return None
        arguments.append(escaped_a)
    if output_index is None or arguments.count("{output}") != 1:
        return None
    return Cc1Template(executable=first[0], arguments=tuple(arguments))


def _zig_executable() -> Path:
    """The ``zig`` binary inside the installed ziglang package."""
    try:
        import ziglang
    except ImportError as error:
        raise ToolchainError("the ziglang package is not installed (pip install ziglang), "
                             "and no system clang was named (NCC_CLANG or clang=)") from error
    package_dir = Path(ziglang.__file__).resolve().parent
    for candidate in ("zig", "zig.exe"):
        if (package_dir / candidate).is_file():
            return package_dir / candidate
    raise ToolchainError(f"no zig executable inside the ziglang package at {package_dir}")


def _clang_version(command: list[str]) -> str:
    """Run ``command --version`` and return ``clang X.Y.Z``."""
    try:
        completed = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ToolchainError(f"cannot run {' '.join(command)}: {error}") from error
    match = re.search(r"clang version (\d+\.\d+\.\d+)", completed.stdout)
    if completed.returncode != 0 or not match:
        raise ToolchainError(f"{' '.join(command)} --version did not report a clang version: "
                             f"{(completed.stdout + completed.stderr).strip()[:200]}")
    return f"clang {match.group(1)}"


@functools.lru_cache(maxsize=None)
def _find_toolchain_cached(requested: str | None) -> Toolchain:
    if requested is None:
        zig = _zig_executable()
        version = _clang_version([str(zig), "clang"])
        logger.debug("using ziglang clang at %s (%s)", zig, version)
        return Toolchain(kind="ziglang", path=str(zig), version=version)
    resolved = requested if os.sep in requested else shutil.which(requested)
    if not resolved or not Path(resolved).is_file():
        raise ToolchainError(f"clang {requested!r} not found (from clang= or NCC_CLANG)")
    resolved = str(Path(resolved).resolve()) if os.sep in requested else resolved
    version = _clang_version([resolved])
    toolchain = Toolchain(kind="system", path=resolved, version=version)
    if toolchain.major < MINIMUM_CLANG_MAJOR:
        raise ToolchainError(f"{resolved} is {version}; ncc needs clang {MINIMUM_CLANG_MAJOR} or newer")
    logger.debug("using system clang at %s (%s)", resolved, version)
    return toolchain


def find_toolchain(clang: str | os.PathLike | Toolchain | None = None) -> Toolchain:
    """The toolchain to compile with.

    Args:
        clang: a Toolchain, a path or name of a system clang, or None for ``$NCC_CLANG`` if set and
            the ziglang package's clang otherwise. The name ``ziglang`` picks the packaged clang.

    Returns:
        The Toolchain (looked up once per process for each request).

    Raises:
        ToolchainError: the named clang is missing, is too old, or ziglang is not installed.
    """
    if isinstance(clang, Toolchain):
        return clang
    requested = str(clang) if clang is not None else os.environ.get("NCC_CLANG") or None
    if requested == "ziglang":
        requested = None
    return _find_toolchain_cached(requested)


def _distribution_version(name: str) -> str | None:
    import importlib.metadata  # here, not at the top: it costs every command's start-up tens of ms

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def doctor_report(clang: str | os.PathLike | Toolchain | None = None) -> dict:
    """What ``ncc doctor`` prints: the toolchain and the versions that matter.

    Args:
        clang: as for :func:`find_toolchain`.

    Returns:
        A dict with ``toolchain``, ``clang_path``, ``clang_version``, ``llvmlite_llvm_version``,
        ``python``, ``platform`` and the versions of numpy, llvmlite, ziglang, networkx and torch
        (None when a package is absent; torch is looked up, never imported). A toolchain that cannot be
        found gives ``toolchain: None`` and the reason in ``toolchain_error``.
    """
    report: dict = {"python": sys.version.split()[0], "platform": platform.platform()}
    try:
        toolchain = find_toolchain(clang)
        report.update(toolchain=toolchain.kind, clang_path=toolchain.path, clang_version=toolchain.version)
    except ToolchainError as error:
        report.update(toolchain=None, clang_path=None, clang_version=None, toolchain_error=str(error))
    try:
        import llvmlite.binding as llvm

        report["llvmlite_llvm_version"] = ".".join(str(part) for part in llvm.llvm_version_info)
    except ImportError:
        report["llvmlite_llvm_version"] = None
    for package in ("numpy", "llvmlite", "ziglang", "networkx", "torch"):
        report[f"{package}_version"] = _distribution_version(package)
    return report
