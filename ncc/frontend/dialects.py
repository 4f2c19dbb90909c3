"""Source dialects: rewrites and flags that let old or incomplete code compile with a modern clang.

A dialect is a function ``text -> (fixed text, extra flags)``. :func:`apply_dialect` looks one up by
name and applies it to a :class:`~ncc.frontend.compile.SourceText`.

``poj104``: the CodeXGLUE copy of POJ-104 (student programs from an online judge, written for
old GCC and Visual C++) has its ``#include`` lines stripped and uses ``void main``, ``main()``
without a return type and ``gets``. Like NCC (``task/classifyapp/header.cpp`` and
``preprocess.zsh``), ncc force-includes a prelude of standard headers with ``using namespace std;``
and rewrites ``void main`` to ``int main``; it also types an untyped ``main``, gives ``gets`` back,
compiles as C++ 98 with GNU extensions (no C++11 narrowing errors, no ``auto`` surprises), and silences
warnings.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Sequence

from ncc.errors import InputError
from ncc.frontend.toolchain import INCLUDE_DIR

if TYPE_CHECKING:  # pragma: no cover
    from ncc.frontend.compile import SourceText

POJ104_PRELUDE = INCLUDE_DIR / "poj104_prelude.h"

_VOID_MAIN = re.compile(r"\bvoid\s+main\s*\(")
_UNTYPED_MAIN = re.compile(r"^(\s*)main\s*\(", re.MULTILINE)
_MAIN_EMPTY_RETURN = re.compile(r"\breturn\s*;")

#: Flags for POJ-104 programs, before the prelude's ``-include``.
POJ104_FLAGS = ("-std=gnu++98", "-w")


def poj104(text: str) -> tuple[str, list[str]]:
    """Fix a POJ-104 program for clang++.

    Args:
        text: the program as stored in the data set.

    Returns:
        (fixed text, flags): ``void main(`` and an untyped ``main(`` become ``int main(``, and the
        flags force-include the prelude, pick ``-std=gnu++98`` and silence warnings.
    """
    fixed = _VOID_MAIN.sub("int main(", text)
    fixed = _UNTYPED_MAIN.sub(r"\1int main(", fixed)
    if fixed != text and _VOID_MAIN.search(text):
        fixed = _fix_empty_returns_in_main(fixed)
    flags = [*POJ104_FLAGS, "-include", str(POJ104_PRELUDE)]
    return fixed, flags


def _fix_empty_returns_in_main(text: str) -> str:
    """Inside ``int main`` that used to be ``void main``, ``return;`` becomes ``return 0;``."""
    start = text.find("int main(")
    if start < 0:
        return text
    body_start = text.find("{", start)
    if body_start < 0:
        return text
    depth = 0
    for position in range(body_start, len(text)):
        character = text[position]
        if character == "{":
            depth += 1
        elif character == "}":
            depth -= 1
            if depth == 0:
                body = _MAIN_EMPTY_RETURN.sub("return 0;", text[body_start:position])
                return text[:body_start] + body + text[position:]
    return text


_ERROR_AT = re.compile(r"^[^:\n]+:(\d+):(\d+): error: (.*)$", re.MULTILINE)
_IDENTIFIER_AT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REPAIR_MARK = "/* ncc poj104 repair */"


def _identifier_at(lines: list[str], line: int, column: int) -> str | None:
    if not 1 <= line <= len(lines):
        return None
    match = _IDENTIFIER_AT.match(lines[line - 1], column - 1)
    return match.group(0) if match else None


_TYPE_WORDS = r"(?:int|float|double|char|long|short|bool|unsigned|signed|string|struct\s+\w+)"


def _declared_in(text: str, identifier: str) -> bool:
    """Whether the program declares ``identifier`` as a variable (``int a, identifier[N];``)."""
    pattern = rf"\b{_TYPE_WORDS}\b[^;{{}}()]*\b{re.escape(identifier)}\s*[\[=,;]"
    return re.search(pattern, text) is not None


def poj104_repair(text: str, diagnostics: str) -> str | None:
    """Second chance for a POJ-104 program clang rejected, from clang's errors.

    CodeXGLUE stripped every preprocessor line, so ``#define LEN 100`` and the like are gone, and a
    program's own globals (``next``, ``count``) can clash with names that ``using namespace std``
    brings in. For each error at an identifier:

    * ``use of undeclared identifier X`` (not a call) and ``reference to overloaded function could not
      be resolved`` (a lost constant named like ``max``): ``#define X`` as a constant, 3.14159265358979
      for names containing ``pi``, else 1000 (the usual judge array bound);
    * ``reference to X is ambiguous``: ``#define X ncc_user_X`` renames the program's own X.

    Returns:
        The text with ``#define`` lines prepended, or None when nothing can be repaired.
    """
    lines = text.splitlines()
    defines: dict[str, str] = {}
    for match in _ERROR_AT.finditer(diagnostics):
        line, column, message = int(match.group(1)), int(match.group(2)), match.group(3)
        identifier = _identifier_at(lines, line, column)
        if identifier is None or identifier == "main":
            continue
        rest = lines[line - 1][column - 1 + len(identifier):].lstrip()
        if message.startswith("use of undeclared identifier") or message.startswith(
                "reference to overloaded function could not be resolved"):
            if rest.startswith("(") or _declared_in(text, identifier):
                continue  # a call, or a variable whose declaration failed because of another name
            defines.setdefault(identifier, "3.14159265358979" if "pi" in identifier.lower() else "1000")
        elif message.startswith("reference to") and "is ambiguous" in message:
            defines.setdefault(identifier, f"ncc_user_{identifier}")
    if not defines:
        return None
    # Line numbers in a later round's diagnostics refer to this repaired text, which is what the next
    # call receives.
    header = "\n".join([_REPAIR_MARK, *(f"#define {name} {value}" for name, value in defines.items())])
    return header + "\n" + text


#: Dialect name -> function ``text -> (text, flags)``.
DIALECTS: dict[str, Callable[[str], tuple[str, list[str]]]] = {"poj104": poj104}

#: Dialect name -> function ``(text, clang stderr) -> repaired text or None``, tried after a failure.
REPAIRS: dict[str, Callable[[str, str], str | None]] = {"poj104": poj104_repair}

#: How many repair rounds a source gets.
MAX_REPAIR_ROUNDS = 3


def apply_dialect(name: str, source: SourceText, flags: Sequence[str] = ()) -> tuple[SourceText, tuple[str, ...]]:
    """Apply the dialect ``name`` to a source.

    Args:
        name: a key of :data:`DIALECTS`.
        source: the source as read.
        flags: the flags so far; the dialect's flags go before them, so the caller's win.

    Returns:
        (new SourceText, all flags). POJ-104 sources are compiled as C++ whatever their extension.

    Raises:
        InputError: unknown dialect.
    """
    try:
        dialect = DIALECTS[name]
    except KeyError:
        raise InputError(f"unknown dialect {name!r}; known: {', '.join(sorted(DIALECTS))}") from None
    text, dialect_flags = dialect(source.text)
    language = "c++" if name == "poj104" else source.language
    return replace(source, text=text, language=language, dialect=name), (*dialect_flags, *flags)
