"""Reading input files with one-line errors, and writing output files atomically."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from ncc.errors import DatasetError, InputError, OutputError

#: Write errors after which no later file in the same folder can be written either.
FOLDER_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT})


def read_input_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of an input file, or :class:`InputError` with a one-line reason naming the file.

    Raises:
        InputError: the file is missing, a directory, unreadable or empty.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", str(path)) from None
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror or error}", str(path)) from None
    if not data.strip():
        raise InputError("file is empty", str(path))
    return data


def read_json_record(path: str | os.PathLike, file_name: str, what: str) -> tuple[Path, dict]:
    """A JSON object that ncc wrote, from its file or from a folder holding ``file_name``; and its path.

    Raises:
        DatasetError: no such file, or it does not hold a JSON object (``what`` names the kind of file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / file_name
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"no {what} at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not a {what} file: {error}") from None
    if not isinstance(record, dict):
        raise DatasetError(f"{path}: not a {what} file")
    return path, record


def atomic_write(path: str | os.PathLike, content: bytes | str | Callable[[Any], None], mode: str = "w") -> Path:
    """Write a file through a temporary file in the same folder and ``os.replace`` it into place.

    A reader never sees a half-written file, and a crash leaves the old file (or none) behind.

    Args:
        path: the file to write.
        content: bytes or str to write, or a function that writes to the open stream.
        mode: ``"w"`` (text, UTF-8) or ``"wb"``; bytes content always writes in binary.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        mode = "wb"
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise type(error)(error.errno, error.strerror, str(path)) from None
    try:
        os.fchmod(handle, 0o666 & ~current_umask())  # mkstemp's 0600 would ignore the umask
        with os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as stream:
            if callable(content):
                content(stream)
            else:
                stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        if error.filename not in (None, temporary) or error.errno is None:
            raise
        raise type(error)(error.errno, error.strerror, str(path)) from None  # name the file, not its temporary
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_folder_error(error: OSError, folder: str | os.PathLike) -> OutputError | None:
    """The one-line error for a write into ``folder`` that every later write would repeat, else None."""
    if error.errno not in FOLDER_WRITE_ERRORS:
        return None
    return OutputError(f"cannot write to {folder}: {error.strerror or error}")


def prepare_output_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` and check that a file can be written there, before any work.

    Raises:
        OutputError: it cannot be created or written (read-only, no permission, full, a file in the way).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".ncc-probe.", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except FileExistsError:
        raise OutputError(f"cannot write to {folder}: a file is in the way of the folder") from None
    except NotADirectoryError:
        raise OutputError(f"cannot write to {folder}: a file is in the way of the folder") from None
    except OSError as error:
        raise OutputError(f"cannot write to {folder}: {error.strerror or error}") from None
    return folder


def write_output(path: str | os.PathLike, content: bytes | str | Callable[[Any], None], folder: str | os.PathLike,
                 mode: str = "w") -> Path:
    """:func:`atomic_write` for a batch writing into ``folder``.

    Raises:
        OutputError: the folder takes no more files (full, read-only or gone); other errors as they are.
    """
    try:
        return atomic_write(path, content, mode)
    except OSError as error:
        fatal = output_folder_error(error, folder)
        if fatal is None:
            raise
        raise fatal from None


def extract_members(tar: "tarfile.TarFile", destination: str | os.PathLike, members: Any = None) -> None:
    """``tar.extractall`` with the "data" filter (no links out, no absolute paths) where ``tarfile`` has it.

    Filters came with Python 3.10.12 / 3.11.4; without one, 3.12 and 3.13 warn and 3.14 applies "data" anyway.
    """
    import tarfile

    options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    tar.extractall(destination, members=members, **options)
