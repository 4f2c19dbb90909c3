"""The notebooks run from top to bottom (quick mode) and show the table and figures.

Each runs in a ``python3`` kernel of this environment's ipykernel, with ``NCC_NOTEBOOK_QUICK=1`` and private
output and cache folders. Needs nbclient and ipykernel (the ``dev`` extra) and the notebook's data set in
``$NCC_DATA`` (skipped otherwise).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
DATA = Path(os.environ.get("NCC_DATA", "/nonexistent"))
NEEDS = {"devmap": DATA / "devmap" / "cgo17-amd.csv",
         "threadcoarsening": DATA / "threadcoarsening" / "pact-2014-runtimes.csv",
         "classifyapp": DATA / "poj104" / "manifest.csv.gz",
         "dataflow": None}  # ncc's generated programs


def kernel_of_this_python() -> str:
    """``python3``, once checked to be this environment's ipykernel (the kernel then runs ``sys.executable``)."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager, find_kernel_specs

    specs = find_kernel_specs()
    if "python3" not in specs:
        pytest.skip("no python3 kernel spec")
    spec = KernelSpecManager().get_kernel_spec("python3")
    # jupyter_client starts a spec whose command is plain "python" with sys.executable; any other command
    # would run another interpreter, without this environment's ncc.
    if spec.argv[0] not in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}",
                            sys.executable):
        pytest.skip(f"the python3 kernel runs {spec.argv[0]}, not this environment's python")
    return "python3"


def outputs(notebook) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_notebook_runs_quick(name, tmp_path, monkeypatch):
    if NEEDS[name] is not None and not NEEDS[name].is_file():
        pytest.skip(f"$NCC_DATA/{name} not present")
    kernel = kernel_of_this_python()
    import nbformat
    from nbclient import NotebookClient

    output = tmp_path / "output"
    for key, value in {"NCC_NOTEBOOK_QUICK": "1", "NCC_NOTEBOOK_OUTPUT": str(output),
                       "NCC_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this environment
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert not outputs(notebook), "commit the notebook with its outputs cleared"
    NotebookClient(notebook, timeout=600, kernel_name=kernel,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()  # raises on a failing cell

    results = outputs(notebook)
    assert not [o for o in results if o.output_type == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) for o in results)
    expected = {"devmap": ("| static |", "| published |",  # and the NPB rows the transfer size gives away
                           "| npb-3.3-BT | A | 320,454,224 / 320,457,304 | 15 / 0 | 0 / 16 |"),
                "threadcoarsening": ("| oracle |", "(published only)"),
                "classifyapp": ("| rgine |", "| ProGraML GGNN (Cummins et al., 2021) | (published) |"),
                "dataflow": ("| reachability | ggnn-stable | quick |", "| reachability | mlp | quick |")}[name]
    assert all(line in text for line in expected)
    images = [o for o in results if "image/png" in o.get("data", {})]
    # curves or speedups, a confusion matrix, a map; dataflow: F1 by steps, the query drawn twice
    assert len(images) >= (3 if name in ("classifyapp", "dataflow") else 2)
    assert (output / f"{name}.md").is_file() and list(output.glob("*.png"))
