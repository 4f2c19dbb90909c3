"""Batches on a real Dask cluster (2 local worker processes) give what the local process pool gives."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ncc.errors import NccError
from ncc.frontend.batch import compile_batch
from ncc.processes import ExecutorSpec, JobFailed, close_dask_clients, parse_executor, run_jobs

distributed = pytest.importorskip("distributed", reason="the cluster extra is not installed: pip install 'ncc[cluster]'")

SOURCES = {
    "square.c": "int square(int x) { return x * x; }\n",
    "loop.c": "int sum(int n) { int s = 0; for (int i = 0; i < n; i++) s += i; return s; }\n",
    "calls.c": "static int twice(int x) { return 2 * x; }\nint four(int x) { return twice(twice(x)); }\n",
    "branch.cpp": "int pick(bool b, int x) { if (b) return x; throw x; }\n",
    "vector.cpp": "#include <vector>\nint n(const std::vector<int>& v) { return (int) v.size(); }\n",
    "bad.c": "int broken( { return 1; }\n",
    "kernel.cl": "__kernel void add(__global float *a) { a[get_global_id(0)] += 1.0f; }\n",
}


@pytest.fixture(scope="module")
def cluster():
    """A Dask scheduler and 2 worker processes of one thread, on this machine; its address."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as local_cluster:
        yield local_cluster.scheduler_address
    close_dask_clients()


@pytest.fixture
def sources(tmp_path, monkeypatch):
    monkeypatch.setenv("NCC_CACHE", str(tmp_path / "ncc-cache"))
    monkeypatch.delenv("NCC_EXECUTOR", raising=False)
    monkeypatch.delenv("NCC_CLANG", raising=False)
    folder = tmp_path / "src"
    folder.mkdir()
    for name, text in SOURCES.items():
        (folder / name).write_text(text)
    return sorted(folder.iterdir())


def test_parse_executor_forms_and_refusals(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.delenv("NCC_EXECUTOR", raising=False)
    assert parse_executor(None) == parse_executor("local") == ExecutorSpec("local")
    monkeypatch.setenv("NCC_EXECUTOR", "dask://head:8786")  # what a batch deep inside a task runs on
    assert parse_executor(None) == ExecutorSpec("dask", "tcp://head:8786")
    assert parse_executor("local") == ExecutorSpec("local")
    monkeypatch.delenv("NCC_EXECUTOR")
    assert parse_executor("dask") == ExecutorSpec("dask", None)
    assert parse_executor("dask://head:8786") == ExecutorSpec("dask", "tcp://head:8786")
    assert parse_executor("tcp://10.0.0.1:8786") == ExecutorSpec("dask", "tcp://10.0.0.1:8786")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://head:9999")
    assert parse_executor("dask") == ExecutorSpec("dask", "tcp://head:9999")
    with pytest.raises(NccError, match="Dask, not Ray"):
        parse_executor("ray://head:10001")
    with pytest.raises(NccError, match="unknown executor 'spark'"):
        parse_executor("spark")


def test_dask_chunks_shrink_to_single_jobs_and_cover_the_batch():
    from ncc.processes import MAX_CHUNK, dask_chunks

    for jobs, threads in ((400, 2), (52_000, 2), (1_000_000, 3200), (3, 8)):
        sizes = dask_chunks(jobs, threads)
        assert sum(sizes) == jobs and sizes == sorted(sizes, reverse=True)
        assert max(sizes) <= MAX_CHUNK and sizes[-1] == 1
    assert dask_chunks(400, 2)[0] == 100 and dask_chunks(10, 2, chunksize=4) == [4, 4, 2]


def _outcome(result):
    irs = {Path(entry.path).name: entry.ir_path.read_bytes() for entry in result.entries}
    failures = [(Path(failure.path).name, failure.reason) for failure in result.failures]
    return irs, failures


def test_compile_batch_on_a_dask_cluster_is_the_local_batch(cluster, sources, tmp_path):
    local = compile_batch(sources, workers=2, cache_dir=tmp_path / "local", progress=False)
    with distributed.Client(cluster) as observer, distributed.get_task_stream(client=observer) as stream:
        remote = compile_batch(sources, workers=2, cache_dir=tmp_path / "dask", progress=False, executor=cluster)
        workers = set(observer.nthreads())
    assert _outcome(remote) == _outcome(local)
    assert len(remote.entries) == 6 and [Path(f.path).name for f in remote.failures] == ["bad.c"]
    assert remote.compiled == 7 and remote.cache_hits == 0
    ran = [task for task in stream.data if task["key"].startswith("_run_chunk")]
    assert ran and {task["worker"] for task in ran} <= workers
    # the same content-addressed cache: a second run on the cluster compiles nothing, remembers the failure
    again = compile_batch(sources, workers=2, cache_dir=tmp_path / "dask", progress=False, executor=cluster)
    assert again.compiled == 0 and again.cache_hits == 7 and _outcome(again) == _outcome(local)
    # and the cache the cluster filled is the one a local run reads
    local_again = compile_batch(sources, workers=2, cache_dir=tmp_path / "dask", progress=False)
    assert local_again.compiled == 0 and _outcome(local_again) == _outcome(local)


def test_graph_command_on_a_dask_cluster_writes_the_local_files(cluster, sources, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ncc.cli import cli

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    outputs = {}
    for name, executor in (("local", "local"), ("dask", cluster)):
        done = runner.invoke(cli, ["graph", "src", "-o", f"graphs-{name}", "-j", "2", "--executor", executor])
        assert done.exit_code == 0, done.output
        assert "src/bad.c" in done.output
        folder = tmp_path / f"graphs-{name}"
        outputs[name] = {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*.json")}
    assert len(outputs["local"]) == 6 and outputs["dask"] == outputs["local"]


def test_run_jobs_reports_each_failure_and_keeps_order_of_positions(cluster):
    jobs = [-3, 2, "x", -1, None, 7]
    for executor in ("local", cluster):
        outcomes = dict(run_jobs(abs, jobs, workers=2, executor=executor, chunksize=2))
        assert sorted(outcomes) == list(range(len(jobs)))
        assert [outcomes[i] for i in (0, 1, 3, 5)] == [3, 2, 1, 7]
        assert isinstance(outcomes[2], JobFailed) and "bad operand type" in outcomes[2].reason
        assert isinstance(outcomes[4], JobFailed)


def test_dask_executor_starts_a_local_cluster_of_the_workers_asked(sources, tmp_path, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    from ncc.processes import dask_client

    try:
        result = compile_batch(sources[:3], workers=2, cache_dir=tmp_path / "ir", progress=False, executor="dask")
        assert len(result.entries) + len(result.failures) == 3 and result.compiled == 3
        assert len(dask_client(ExecutorSpec("dask"), 2).nthreads()) == 2
    finally:
        close_dask_clients()


def test_unreachable_scheduler_is_one_line_naming_it(sources, tmp_path):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(NccError) as caught:
            compile_batch(sources, workers=2, cache_dir=tmp_path / "ir", progress=False, executor="tcp://127.0.0.1:9")
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in str(caught.value)
    assert "\n" not in str(caught.value)
