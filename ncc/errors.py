"""Typed errors. Every error carries enough to print one line that names the file and the reason."""

from __future__ import annotations


class NccError(Exception):
    """Base class of every error ncc raises on purpose.

    Args:
        message: what went wrong.
        path: the file it concerns, if any.
    """

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ToolchainError(NccError):
    """No usable clang, or a clang that cannot do what was asked."""


class InputError(NccError):
    """A file that is missing, empty, binary where text was expected, or unreadable."""


class CompilationError(NccError):
    """clang rejected a source. Carries the command line and the tail of clang's stderr."""

    def __init__(self, message: str, path: str | None = None, command: list[str] | None = None,
                 stderr: str = ""):
        super().__init__(message, path)
        self.command = list(command or [])
        self.stderr = stderr

    @property
    def stderr_tail(self) -> str:
        """The last 20 lines of clang's diagnostics."""
        return "\n".join(self.stderr.strip().splitlines()[-20:])


class IRParseError(NccError):
    """Malformed LLVM IR. ``line`` is 1-based, or None when the position is unknown."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        super().__init__(message, path)
        self.line = line

    def __str__(self) -> str:
        where = self.path or "<ir>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}"


class GraphBuildError(NccError):
    """A program graph failed validation."""


class DatasetError(NccError):
    """A data set file is missing, corrupt, or fails its checksum."""


class OutputError(NccError):
    """An output folder that takes no more files: read-only, full, or gone. A batch stops at the first."""
