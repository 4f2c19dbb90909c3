"""Preprocessor settings that the OpenCL benchmark suites' host programs give their kernels.

The kernels of the devmap (Grewe et al. / DeepTune) and thread-coarsening (Magni et al.) data sets
were compiled at run time by host programs that passed ``-D`` options to ``clBuildProgram``. The
kernel files alone therefore leave some macros undefined. This module supplies them, so ncc's own
frontend can compile the original sources in ``devmap/ncc/kernels_cl`` and
``threadcoarsening/kernels_cl``.

Where each value comes from:

* NPB 3.3 (SNU NPB-OpenCL): the host passes the problem class as ``-DCLASS='A'`` and the headers
  (``bt.h``, ``cg.h``, ``lu.h``, ``sp.h`` ...) derive every size from it. The class is the row's
  ``dataset`` column (S, W, A, B or C).
* Everything else: the value the kernel was built with in the DeepTune data set. Its ``src`` column
  (``devmap/kernels_cl_normalized``) is the preprocessed kernel, so the macros appear there
  expanded; e.g. ``shoc-1.1.5-S3D-*`` index ``b[((k)-1)*(8)+get_global_id(0)]``, so ``N_GP=8``.

  ============================  ==============================================  ==================
  kernels                       macros                                          seen in src as
  ============================  ==============================================  ==================
  nvidia-4.2-FDTD3d             RADIUS=16 MAXWORKX=8 MAXWORKY=16                ``o[16 + 2 * 16][8 + 2 * 16]``, ``float t[16]``
  nvidia-4.2-MatrixMul          BLOCK_SIZE=64                                   ``f * 64 * j``
  nvidia-4.2-MersenneTwister    MT_RNG_COUNT=4096                               ``(d + 0) * 4096``
  rodinia-3.1 hotspot/lud/nw    BLOCK_SIZE=64                                   ``n[64][64]``, ``e < 64``
  shoc-1.1.5-S3D                N_GP=8                                          ``((1) - 1) * (8)``
  shoc-1.1.5-Stencil2D          LROWS=16 (local tile rows)                      ``int n = 16``
  npb-3.3 CG main_0, FT cffts*  LSIZE=64 (work-group size)                      ``get_global_id(0) / 64``, ``__local double i[64]``
  ============================  ==============================================  ==================

* NPB SP's ``initialize2`` ... ``initialize5`` call ``exact_solution()`` without a prototype (the suite
  declares it once in its program source); OpenCL C forbids implicit declarations, so ncc force-includes
  that one-line prototype from ``include/suites/npb/sp_exact_solution.h``.
* Parboil's ``stencil`` kernel includes Parboil's ``common.h`` (the ``Index3D`` macro). The
  thread-coarsening copy ships without it, so ncc carries an equivalent header in
  ``include/suites/parboil`` and adds that folder to the include path after the kernel's own.
"""

from __future__ import annotations

import re

from ncc.frontend.toolchain import INCLUDE_DIR

#: Headers that benchmark suites' host trees provide and the kernel folders lack.
SUITE_INCLUDE_DIR = INCLUDE_DIR / "suites"

NPB_CLASSES = ("S", "W", "A", "B", "C", "D", "E")

# benchmark name prefix -> the -D flags its host program used (see the module docstring).
_DEFINES_BY_PREFIX: dict[str, tuple[str, ...]] = {
    "nvidia-4.2-FDTD3d-": ("-DRADIUS=16", "-DMAXWORKX=8", "-DMAXWORKY=16"),
    "nvidia-4.2-MatrixMul-": ("-DBLOCK_SIZE=64",),
    "nvidia-4.2-MersenneTwister-": ("-DMT_RNG_COUNT=4096",),
    "rodinia-3.1-hotspot-": ("-DBLOCK_SIZE=64",),
    "rodinia-3.1-lud-": ("-DBLOCK_SIZE=64",),
    "rodinia-3.1-nw-": ("-DBLOCK_SIZE=64",),
    "shoc-1.1.5-S3D-": ("-DN_GP=8",),
    "shoc-1.1.5-Stencil2D-": ("-DLROWS=16",),
    "npb-3.3-CG-main_0": ("-DLSIZE=64",),
    "npb-3.3-FT-cffts": ("-DLSIZE=64",),
}

# NPB SP kernels that call exact_solution() without declaring it.
_SP_KERNELS_WITHOUT_PROTOTYPE = re.compile(r"npb-3\.3-SP-initialize[2-5]$")


def devmap_kernel_flags(benchmark: str, dataset: str = "default") -> list[str]:
    """The ``-D`` flags one devmap row's kernel needs.

    Args:
        benchmark: ``<suite>-<program>-<kernel>``, e.g. ``npb-3.3-BT-exact_rhs1``.
        dataset: the row's ``dataset`` column (the NPB class for NPB rows).

    Returns:
        Flags to pass to clang (possibly empty).
    """
    flags: list[str] = []
    if benchmark.startswith("npb-"):
        npb_class = dataset.strip().upper()
        if npb_class in NPB_CLASSES:
            flags.append(f"-DCLASS='{npb_class}'")
    for prefix, defines in _DEFINES_BY_PREFIX.items():
        if benchmark.startswith(prefix):
            flags.extend(defines)
    if _SP_KERNELS_WITHOUT_PROTOTYPE.match(benchmark):
        flags.extend(["-include", str(SUITE_INCLUDE_DIR / "npb" / "sp_exact_solution.h")])
    return flags


def threadcoarsening_kernel_flags(kernel: str) -> list[str]:
    """Flags one thread-coarsening kernel (``binarySearch`` ... ``stencil``) needs.

    Only ``stencil`` (Parboil's) needs anything: the folder holding Parboil's ``common.h``.
    """
    if kernel == "stencil":
        return ["-idirafter", str(SUITE_INCLUDE_DIR / "parboil")]
    return []


_DUPLICATE_STRUCT = re.compile(r"struct\s+(Node|Edge)\s*\{\s*int\s+x\s*;\s*int\s+y\s*;\s*\}\s*;")


def devmap_source_fix(benchmark: str, text: str) -> str:
    """Repair the one devmap kernel that does not compile as shipped.

    ``parboil-0.2-bfs-BFS_kernel`` includes this copy's ``config.h``, which already defines
    ``struct Node`` and ``struct Edge`` (in Parboil's own tree they come from a host header), and then
    defines them again; C forbids the second definition. The kernel's own copies are removed.

    Args:
        benchmark: the devmap benchmark name.
        text: the kernel source.

    Returns:
        The source to compile (unchanged for every other kernel).
    """
    if benchmark != "parboil-0.2-bfs-BFS_kernel" or '#include "config.h"' not in text:
        return text
    return _DUPLICATE_STRUCT.sub("", text)
