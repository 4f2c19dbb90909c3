"""Compile one C, C++ or OpenCL source to an :class:`~ncc.frontend.ir.IRModule`."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ncc.fileio import read_input_bytes
from ncc.errors import CompilationError, InputError
from ncc.frontend.ir import IRModule
from ncc.frontend.toolchain import INCLUDE_DIR, Toolchain, find_toolchain
from ncc.paths import cache_home

logger = logging.getLogger(__name__)

#: File extension -> language.
SOURCE_EXTENSIONS = {".c": "c", ".cpp": "c++", ".cc": "c++", ".cxx": "c++", ".cl": "opencl"}
#: Language -> the extension a text source is written to disk with.
LANGUAGE_EXTENSIONS = {"c": ".c", "c++": ".cpp", "opencl": ".cl"}
#: Names accepted for ``language=`` and what they mean.
LANGUAGE_ALIASES = {"c": "c", "c++": "c++", "cpp": "c++", "cxx": "c++", "cl": "opencl", "opencl": "opencl"}

#: Seconds one clang run may take before it counts as failed.
DEFAULT_TIMEOUT_S = 300.0

#: ncc's large force-included C++ headers, compiled once into a precompiled header (PCH) per
#: toolchain and flag set: the POJ-104 prelude pulls in <iostream>, which costs ~0.3 s a file to parse.
PRECOMPILABLE_HEADERS = (INCLUDE_DIR / "poj104_prelude.h",)

#: Flags the PCH is built with besides the compile's own. ``-fpch-instantiate-templates`` does the
#: header's pending template instantiations once, in the PCH: without it every file that loads the PCH
#: redoes them (with libc++'s <iostream>, an empty program reads half of the PCH's 49,000 declarations and
#: ends with ~12,000 types: ~45 ms of CPU per file, 4x the whole compile of an empty program, and about what
#: Debian's clang-19 spends parsing the prelude's headers as text, which is why a PCH once seemed to save
#: nothing). The IR is the same either way (tests/frontend/test_fast_compile.py).
PCH_BUILD_FLAGS = ("-fpch-instantiate-templates",)


@dataclass(frozen=True)
class SourceText:
    """A source read into memory, with where it came from.

    Attributes:
        text: the source (undecodable bytes kept as surrogate escapes, so they round-trip).
        path: the file it was read from, or None for text given directly.
        language: ``c``, ``c++`` or ``opencl``.
        name: short name, the file's stem by default.
        dialect: the :mod:`ncc.frontend.dialects` dialect already applied, whose repair step gets a
            second try at sources clang rejects.
    """

    text: str
    path: Path | None
    language: str
    name: str
    dialect: str | None = None

    @property
    def sha256(self) -> str:
        """sha256 of the source bytes."""
        return hashlib.sha256(encode_source(self.text)).hexdigest()


def encode_source(text: str) -> bytes:
    """Source text back to bytes (the inverse of :func:`decode_source`)."""
    return text.encode("utf-8", errors="surrogateescape")


def decode_source(data: bytes) -> str:
    """Bytes of a source file to text; bytes that are not UTF-8 survive as surrogate escapes."""
    return data.decode("utf-8", errors="surrogateescape")


def normalise_language(language: str) -> str:
    """``cpp``/``cxx`` -> ``c++``, ``cl`` -> ``opencl``; raises InputError for anything else."""
    try:
        return LANGUAGE_ALIASES[language.lower()]
    except KeyError:
        raise InputError(f"unknown language {language!r}; expected one of c, c++, opencl") from None


def language_of(path: str | os.PathLike) -> str | None:
    """The language a file extension implies, or None."""
    return SOURCE_EXTENSIONS.get(Path(path).suffix.lower())


def read_text_file(path: str | os.PathLike) -> bytes:
    """The bytes of a text file, or InputError with a one-line reason naming the file.

    Raises:
        InputError: the file is missing, a directory, unreadable, empty or binary (holds NUL bytes).
    """
    data = read_input_bytes(path)
    if b"\0" in data[:65536]:
        raise InputError("binary file (holds NUL bytes), expected text", str(path))
    return data


def _looks_like_path(source: str) -> bool:
    """A one-line string that names a file rather than holding code."""
    if "\n" in source or len(source) > 4096:
        return False
    stripped = source.strip()
    if not stripped or (("{" in stripped or ";" in stripped) and not os.path.exists(stripped)):
        return False  # one line of code, even one with a "/" in it (``n /= 2;``)
    return Path(stripped).suffix.lower() in SOURCE_EXTENSIONS or os.sep in stripped or os.path.exists(stripped)


def read_source(source: str | os.PathLike, language: str | None = None, name: str | None = None) -> SourceText:
    """Resolve ``source`` (a path or source text) into a :class:`SourceText`.

    A ``Path`` is always a file. A string is a file when it has no newline and names an existing
    file or looks like a path (has a source extension or a directory separator, and no ``{`` or ``;``);
    otherwise it is code.

    Raises:
        InputError: unreadable/empty/binary file, or a language that cannot be inferred.
    """
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(os.fspath(source).strip() if isinstance(source, str) else source)
        text = decode_source(read_text_file(path))
        resolved_language = normalise_language(language) if language else language_of(path)
        if resolved_language is None:
            raise InputError(f"cannot tell the language from the extension {path.suffix!r}; "
                             "pass language= (c, c++ or opencl)", str(path))
        return SourceText(text=text, path=path, language=resolved_language, name=name or path.stem)
    if not isinstance(source, str):
        raise InputError(f"expected a path or source text, got {type(source).__name__}")
    if not source.strip():
        raise InputError("source text is empty")
    if language is None:
        raise InputError("language= is required when the source is given as text")
    return SourceText(text=source, path=None, language=normalise_language(language), name=name or "module")


def compile_source_text(source: SourceText, opt_level: int | str = 0, flags: tuple[str, ...] | list[str] = (),
                        toolchain: Toolchain | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> IRModule:
    """Compile a source that is already in memory, with its dialect's repair rounds.

    Like :func:`_compile_once`; when the source has a dialect with a repair step and clang rejects it,
    the repaired text is compiled instead (up to ``MAX_REPAIR_ROUNDS`` times). The IRModule keeps the
    sha256 of the text before repairs; ``metadata["repairs"]`` counts the rounds used.
    """
    try:
        return _compile_once(source, opt_level, flags, toolchain, timeout_s)
    except CompilationError as first_error:
        if source.dialect is None:
            raise
        from ncc.frontend.dialects import MAX_REPAIR_ROUNDS, REPAIRS

        repair = REPAIRS.get(source.dialect)
        if repair is None:
            raise
        error, text = first_error, source.text
        for round_number in range(1, MAX_REPAIR_ROUNDS + 1):
            repaired = repair(text, error.stderr)
            if repaired is None or repaired == text:
                raise first_error from None
            text = repaired
            try:
                module = _compile_once(replace(source, text=text), opt_level, flags, toolchain, timeout_s)
            except CompilationError as next_error:
                error = next_error
                continue
            module.metadata["repairs"] = round_number
            return replace(module, source_sha256=source.sha256)
        raise first_error from None


def _compile_once(source: SourceText, opt_level: int | str = 0, flags: tuple[str, ...] | list[str] = (),
                  toolchain: Toolchain | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> IRModule:
    """Compile a source that is already in memory, once.

    The text is written to a private temporary directory as ``<name><ext>`` and compiled there; when
    it came from a file, that file's directory is searched first for ``#include "..."``.

    Args:
        source: the source and its provenance.
        opt_level: 0-3, or ``s``/``z``; always passed explicitly.
        flags: extra clang flags.
        toolchain: the clang to use (default: :func:`find_toolchain`).
        timeout_s: seconds before the compile counts as failed.

    Returns:
        The IRModule.

    Raises:
        CompilationError: clang failed or timed out; carries the command and clang's stderr.
    """
    toolchain = toolchain or find_toolchain()
    include_flags = ["-iquote", str(source_directory(source.path))] if source.path is not None else []
    all_flags = tuple(include_flags) + tuple(flags)
    file_name = _safe_file_name(source.name) + LANGUAGE_EXTENSIONS[source.language]
    shown_path = str(source.path) if source.path is not None else None
    with tempfile.TemporaryDirectory(prefix="ncc-compile-", dir=_work_root()) as work_dir:
        Path(work_dir, file_name).write_bytes(encode_source(source.text))
        command_flags = _use_precompiled_headers(toolchain, source.language, opt_level, all_flags, timeout_s)
        command = toolchain.direct_command(source.language, file_name, "out.ll", work_dir, opt_level, command_flags)
        logger.debug("compiling %s: %s", shown_path or source.name, " ".join(command))
        try:
            completed = subprocess.run(command, cwd=work_dir, capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as error:
            raise CompilationError(f"clang timed out after {timeout_s:.0f} s", shown_path, command,
                                   _decode_output(error.stderr or b"")) from None
        except OSError as error:
            raise CompilationError(f"cannot run clang: {error}", shown_path, command) from None
        stderr = _decode_output(completed.stderr)
        output = Path(work_dir, "out.ll")
        if completed.returncode != 0 or not output.is_file():
            first_error = next((line for line in stderr.splitlines() if "error" in line), "")
            message = f"clang exited with status {completed.returncode}"
            if first_error:
                message += f": {first_error.strip()}"
            raise CompilationError(message, shown_path, command, stderr)
        text = output.read_text(errors="surrogateescape")
    if stderr.strip():
        logger.debug("clang diagnostics for %s:\n%s", shown_path or source.name, stderr.strip())
    arguments = toolchain.compile_arguments(source.language, opt_level, all_flags)
    return IRModule(text=text, name=source.name, source_path=shown_path, language=source.language,
                    toolchain=toolchain.name, toolchain_version=toolchain.version, flags=tuple(arguments),
                    source_sha256=source.sha256)


def compile(source: str | os.PathLike, language: str | None = None, opt_level: int | str = 0,
            flags: tuple[str, ...] | list[str] = (), clang: str | os.PathLike | Toolchain | None = None,
            name: str | None = None, dialect: str | None = None) -> IRModule:
    """Compile C, C++ or OpenCL to LLVM IR.

    Args:
        source: a path, or source text (text when it has a newline or names no file).
        language: ``c``, ``c++`` or ``opencl``; inferred from the extension of a file
            (.c .cpp .cc .cxx .cl), required for text.
        opt_level: 0-3 (or ``s``/``z``); always passed to clang, so OpenCL is not silently -O2.
        flags: extra clang flags (``-DN=4``, ``-Iinclude`` ...).
        clang: a system clang (path or name) or Toolchain; default ``$NCC_CLANG``, else ziglang's clang.
        name: the module name (default: the file's stem, or ``module``).
        dialect: a source dialect from :mod:`ncc.frontend.dialects` (e.g. ``poj104``) whose rewrites
            and flags are applied first.

    Returns:
        IRModule with the IR text and its provenance (toolchain, version, flags, source sha256).

    Raises:
        InputError: missing, empty, binary or unreadable file; unknown language.
        CompilationError: clang rejected the source.
        ToolchainError: no usable clang.
    """
    source_text = read_source(source, language, name)
    all_flags = tuple(flags)
    if dialect is not None:
        from ncc.frontend.dialects import apply_dialect

        source_text, all_flags = apply_dialect(dialect, source_text, all_flags)
    return compile_source_text(source_text, opt_level, all_flags, find_toolchain(clang))


def _use_precompiled_headers(toolchain: Toolchain, language: str, opt_level: int | str,
                             flags: tuple[str, ...], timeout_s: float) -> tuple[str, ...]:
    """Replace ``-include <ncc prelude>`` by ``-include-pch`` of a cached PCH, building it if needed.

    The PCH is keyed by the toolchain, language, optimisation level, the other flags and the header's
    text, path and modification time, and written atomically under ``cache_home()/pch``. Any trouble falls back to the plain include.
    """
    if language not in ("c", "c++"):
        return flags
    headers = {str(header) for header in PRECOMPILABLE_HEADERS}
    positions = [index for index in range(len(flags) - 1) if flags[index] == "-include" and flags[index + 1] in headers]
    if len(positions) != 1:
        return flags
    position = positions[0]
    header = Path(flags[position + 1])
    other_flags = tuple(flags[:position]) + tuple(flags[position + 2:])
    other_flags = _without_quote_include_dirs(other_flags)  # user include paths are not checked by clang
    # clang refuses a PCH whose header has another path or modification time than when it was built,
    # so both are part of the key (another checkout of ncc gets a PCH of its own).
    status = header.stat()
    material = "\0".join([toolchain.kind, toolchain.version, language, str(opt_level), *other_flags, *PCH_BUILD_FLAGS,
                          *_header_identity(str(header), status.st_mtime_ns, status.st_size)])
    pch_path = cache_home() / "pch" / f"{header.stem}-{hashlib.sha256(material.encode()).hexdigest()[:24]}.pch"
    if not pch_path.is_file():
        pch_path.parent.mkdir(parents=True, exist_ok=True)
        arguments = toolchain.compile_arguments(language, opt_level, (*other_flags, *PCH_BUILD_FLAGS))
        arguments = [argument for argument in arguments if argument not in ("-S", "-emit-llvm")]
        language_index = arguments.index("-x") + 1
        arguments[language_index] = f"{arguments[language_index]}-header"
        descriptor, temporary = tempfile.mkstemp(dir=pch_path.parent, suffix=".pch.tmp")
        os.close(descriptor)
        try:
            completed = subprocess.run([toolchain.path, *arguments, str(header), "-o", temporary],
                                       capture_output=True, timeout=timeout_s)
            if completed.returncode != 0:
                logger.warning("cannot precompile %s, including it as text: %s", header.name,
                               _decode_output(completed.stderr).strip()[-300:])
                return flags
            os.replace(temporary, pch_path)
            logger.info("precompiled %s into %s", header.name, pch_path)
        except (OSError, subprocess.TimeoutExpired) as error:
            logger.warning("cannot precompile %s, including it as text: %s", header.name, error)
            return flags
        finally:
            Path(temporary).unlink(missing_ok=True)
    return (*flags[:position], "-include-pch", str(pch_path), *flags[position + 2:])


@functools.lru_cache(maxsize=64)
def _header_identity(header: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    """What of a header keys its PCH: its text's sha256, real path, modification time and size (read once
    per process for each version of the file)."""
    path = Path(header)
    return hashlib.sha256(path.read_bytes()).hexdigest(), str(path.resolve()), str(mtime_ns), str(size)


def source_directory(path: Path) -> Path:
    """The real folder of a source file (its ``#include "..."`` folder), the file's own symlink followed.

    Folders are resolved once per process (a corpus has few and many files in each): only a file that is a
    symlink itself is resolved on its own.
    """
    if path.is_symlink():
        return path.resolve().parent
    return _resolved_folder(str(path.parent) if str(path.parent) else ".", os.getcwd() if not path.is_absolute() else "")


@functools.lru_cache(maxsize=4096)
def _resolved_folder(folder: str, relative_to: str) -> Path:
    return (Path(relative_to) / folder).resolve() if relative_to else Path(folder).resolve()


def _without_quote_include_dirs(flags: tuple[str, ...]) -> tuple[str, ...]:
    kept: list[str] = []
    skip_next = False
    for flag in flags:
        if skip_next:
            skip_next = False
        elif flag == "-iquote":
            skip_next = True
        else:
            kept.append(flag)
    return tuple(kept)


_WORK_ROOT: list[str | None] = []


def _work_root() -> str | None:
    """Where compiles get their scratch folders: ``$TMPDIR`` when set, else ``/dev/shm`` (memory: creating
    and removing a folder there costs ~0.2 ms against ~1.2 ms on a disk's ``/tmp``) when it is a writable
    folder, else Python's default. The folder's name appears nowhere in the IR (``-g0``)."""
    if not _WORK_ROOT:
        shared_memory = "/dev/shm"
        if not os.environ.get("TMPDIR") and os.path.isdir(shared_memory) and os.access(shared_memory, os.W_OK | os.X_OK):
            _WORK_ROOT.append(shared_memory)
        else:
            _WORK_ROOT.append(None)
    return _WORK_ROOT[0]


def _safe_file_name(name: str) -> str:
    cleaned = "".join(character if character.isalnum() or character in "-_." else "_" for character in name)
    return cleaned.strip(".") or "module"


def _decode_output(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")
