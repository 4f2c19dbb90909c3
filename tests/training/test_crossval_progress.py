"""The progress of a table's runs spread over processes counts folds, the unit of work, not runs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ncc.training.crossval import count_folds, out_of_fold, run_in_processes


def three_folds(folder: str) -> None:
    """A run of three folds, each one a tiny prediction kept on disk."""
    folds = [(np.arange(0), np.arange(i, i + 1)) for i in range(3)]
    out_of_fold(folds, 3, Path(folder), lambda index, train, test, run: [index])


def test_the_bar_of_runs_in_processes_counts_folds(tmp_path, capsys):
    calls = [(str(tmp_path / f"run{i}"),) for i in range(2)]
    run_in_processes(three_folds, calls, 2, ["run0", "run1"], progress=True, desc="folds here", folds=[3, 3])
    bars = re.findall(r"folds here: +\d+%\|[^|]*\| (\d+)/(\d+) \[[^\]]*fold", capsys.readouterr().err)
    assert bars and bars[-1] == ("6", "6"), bars
    assert sorted(p.name for p in (tmp_path / "run1").iterdir()) == ["fold-0.npy", "fold-1.npy", "fold-2.npy"]


def test_count_folds_sees_computed_and_kept_folds(tmp_path):
    seen = []
    with count_folds(lambda: seen.append(1)):
        three_folds(str(tmp_path))
        three_folds(str(tmp_path))  # the second time the folds are read back
    three_folds(str(tmp_path))
    assert len(seen) == 6
