"""OpenCL kernels to IR modules for the kernel tasks (device mapping, thread coarsening).

:func:`kernel_modules` compiles kernel sources with ncc's frontend (cached) or reads ``.ll`` files, one
:class:`~ncc.frontend.IRModule` per kernel key; failures are listed and never fatal for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ncc.frontend.ir import IRModule, drop_unused_kernel_copies

__all__ = ["KernelSource", "kernel_modules"]


@dataclass(frozen=True)
class KernelSource:
    """One kernel to compile.

    Attributes:
        key: the name results are keyed by (e.g. ``<benchmark>|<dataset>``).
        path: the ``.cl`` file (or ``.ll`` for IR read as it is).
        flags: clang flags for this kernel.
        text: source text to compile instead of the file's (e.g. a repaired or normalised source).
    """

    key: str
    path: Path
    flags: tuple[str, ...] = ()
    text: str | None = None

def kernel_modules(kernels: Sequence[KernelSource], opt_level: int | str = 2, workers: int | None = None,
                   clang: Any = None, cache_dir: str | Path | None = None,
                   progress: bool = True, desc: str = "kernels") -> tuple[dict[str, IRModule], dict[str, str]]:
    """IR modules of kernels, compiled through the batch compiler's cache or read from ``.ll`` files.

    Kernels that share flags are compiled in one batch (one progress bar over all, named ``desc``). clang's uncalled ``__clang_ocl_kern_imp_``
    copies are dropped (see :func:`ncc.frontend.ir.drop_unused_kernel_copies`).

    Returns:
        ``(modules, failures)``: key -> module, and key -> one-line reason for every kernel that failed.
    """
    from ncc.frontend import compile_batch, load
    from ncc.errors import NccError

    modules: dict[str, IRModule] = {}
    failures: dict[str, str] = {}
    groups: dict[tuple[str, ...], list[KernelSource]] = {}
    for kernel in kernels:
        if kernel.path.suffix == ".ll":
            try:
                modules[kernel.key] = load(kernel.path)
            except NccError as error:
                failures[kernel.key] = str(error)
        else:
            groups.setdefault(kernel.flags, []).append(kernel)
    from tqdm import tqdm

    bar = tqdm(total=sum(len(m) for m in groups.values()), desc=desc, unit="kernel", disable=not progress)
    for flags, members in groups.items():
        by_path: dict[Path, list[KernelSource]] = {}
        for kernel in members:
            by_path.setdefault(kernel.path, []).append(kernel)
        texts = {str(path): group[0].text for path, group in by_path.items() if group[0].text is not None}
        result = compile_batch(list(by_path), language="opencl", opt_level=opt_level, flags=flags, workers=workers,
                               cache_dir=cache_dir, progress=False, clang=clang,
                               source_transform=(lambda path, text: texts.get(str(path), text)) if texts else None)
        for entry in result.entries:
            module = drop_unused_kernel_copies(entry.module())
            for kernel in by_path[Path(entry.path)]:
                modules[kernel.key] = module
        for failure in result.failures:
            for kernel in by_path[Path(failure.path)]:
                failures[kernel.key] = failure.reason
        bar.update(len(members))
    bar.close()
    return modules, failures
