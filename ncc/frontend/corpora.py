"""Source corpora ncc compiles for its tasks: the llvm-test-suite's SingleSource programs.

``$NCC_DATA/llvm-test-suite/singlesource.tar.gz`` (see ``datasets/llvm-test-suite/``) is checked against its
pinned sha256 and unpacked once into ncc's cache (atomically: a temporary folder renamed into place).
"""

from __future__ import annotations

import functools
import hashlib
import re
import tarfile
import tempfile
from pathlib import Path

from ncc.download import pins
from ncc.errors import DatasetError
from ncc.fileio import extract_members
from ncc.paths import cache_home, data_home

__all__ = ["llvm_test_suite", "llvm_test_suite_flags", "suite_of", "LLVM_TEST_SUITE_ARCHIVE"]

#: What the suite's CMake files pass to every C program (gcc-c-torture's K&R code and implicit declarations
#: are errors in today's clang by default).
LLVM_TEST_SUITE_FLAGS = ("-w", "-Wno-implicit-int", "-Wno-implicit-function-declaration", "-Wno-int-conversion",
                         "-Wno-incompatible-pointer-types", "-Wno-return-type")

LLVM_TEST_SUITE_ARCHIVE = "llvm-test-suite/singlesource.tar.gz"
#: The extensions of the suite's C and C++ sources.
_SOURCES = (".c", ".cpp", ".cc")


def _unpacked() -> Path:
    archive = data_home() / LLVM_TEST_SUITE_ARCHIVE
    if not archive.is_file():
        raise DatasetError("the llvm-test-suite archive is not in $NCC_DATA (it has no download; see "
                           "datasets/llvm-test-suite/README.md)", str(archive))
    expected = pins("llvm-test-suite")["local_files"][LLVM_TEST_SUITE_ARCHIVE]["sha256"]
    target = cache_home() / "llvm-test-suite" / expected[:16]
    if target.is_dir():
        return target
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != expected:
        raise DatasetError(f"sha256 {digest}, pinned {expected}", str(archive))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        with tarfile.open(archive) as stream:
            extract_members(stream, scratch)
        try:
            Path(scratch).rename(target)
        except OSError:
            if not target.is_dir():  # else another process finished first
                raise
        else:
            Path(scratch).mkdir()  # for the context manager's clean-up
    return target


def llvm_test_suite() -> list[Path]:
    """The suite's C and C++ sources, sorted (``.../SingleSource/<suite>/.../<name>.c``).

    Raises:
        DatasetError: the archive is missing or is not the pinned one.
    """
    root = _unpacked() / "llvm-test-suite" / "SingleSource"
    return sorted(p for p in root.rglob("*") if p.suffix in _SOURCES and p.is_file())


def llvm_test_suite_flags(path: Path) -> tuple[str, ...]:
    """The flags a source of the suite compiles with: the suite's warnings-off set, the ``-D`` definitions its
    folders' ``CMakeLists.txt`` add (Polybench's tolerances), and the shared headers of Polybench and the
    vector unit tests."""
    parts = Path(path).parts
    flags = [*LLVM_TEST_SUITE_FLAGS, *_definitions(Path(path).parent)]
    for folder, headers in (("Polybench", "utilities"), ("Vector", "")):
        if folder in parts:
            flags.append(f"-I{Path(*parts[:parts.index(folder) + 1], headers)}")
    return tuple(flags)


@functools.lru_cache(maxsize=None)
def _definitions(folder: Path) -> tuple[str, ...]:
    """The ``add_definitions(-D...)`` of a folder's ``CMakeLists.txt`` and its parents' up to ``SingleSource``."""
    found: list[str] = []
    while folder.name and folder.name != "SingleSource":
        cmake = folder / "CMakeLists.txt"
        if cmake.is_file():
            for arguments in re.findall(r"add_definitions\(([^)]*)\)", cmake.read_text(errors="replace")):
                found += [word for word in arguments.split() if word.startswith("-D")]
        folder = folder.parent
    return tuple(found)


def suite_of(path: Path) -> str:
    """``Benchmarks``, ``UnitTests`` or ``Regression``: the folder below ``SingleSource`` a source lies in."""
    parts = Path(path).parts
    return parts[parts.index("SingleSource") + 1] if "SingleSource" in parts else ""
