"""On-disk formats for processed program-graph datasets, side by side: size, write time, read rate, memory.

Run (from the repository root)::

    export NCC_DATA=../shared/data
    .venv/bin/python benchmarks/dataset_formats.py --protocol full --graphs 500              # all formats
    .venv/bin/python benchmarks/dataset_formats.py --protocol full --formats ncc-shards,torch-file,npy-mmap,arrow-mmap

Options::

    --protocol P     whose classifyapp training split (the newest processed one in ncc's cache) is written
    --graphs N       only the first N graphs of it (default: all)
    --batch-size N   graphs per batch of the read pass (default 64)
    --formats LIST   any of ncc-shards, torch-file, npy-mmap, arrow-mmap, parquet (default: all; the
                     Arrow and Parquet ones need ``pyarrow``, not an ncc dependency, and are skipped without it)
    --rounds N       read passes of each format, the formats alternating (default 1); graphs/s is their median
    --output FILE    JSON (default benchmarks/results/dataset_formats.json)

The formats, each holding the same items (``x``, ``edge_index``, ``edge_flow``, ``edge_position``,
``node_type``, ``y``, ``num_nodes``), and how an item is read back:

- ``ncc-shards``: ncc's format (:mod:`ncc.training.shards`): per-graph records in 64 MiB shard files,
  narrow dtypes, an index in memory; an item is one ``os.preadv`` into a fresh buffer.
- ``torch-file``: ncc's format before shards: every item collated into one ``torch.save`` file, loaded
  whole (PyG ``InMemoryDataset``); an item is a slice of the loaded tensors.
- ``npy-mmap``: one ``.npy`` file per field, all items concatenated (int64 as in the items) with offsets,
  opened with ``numpy.load(mmap_mode="r")``; an item is a copy of its slices.
- ``arrow-mmap``: an Arrow IPC file (uncompressed), one row per graph with list columns in the shards'
  narrow dtypes, memory-mapped; an item is its row's slices, widened.
- ``parquet``: the same table as Parquet (snappy), row groups of 256 graphs; an item decodes its row group
  (the last one decoded is kept).

Each format is read in a fresh subprocess: open it, then one pass over all graphs in a seeded random
order in batches (``Batch.from_data_list``), as training reads them. Reported: bytes on disk, write
seconds, open seconds, graphs/s of the pass, the peak resident set size (``VmHWM``; not ``ru_maxrss``,
which a child inherits from the parent it was forked from) and the
process's file-backed resident pages (``RssFile``) after the pass: mapped files count towards a
process's memory as they are touched, so ``npy-mmap`` and ``arrow-mmap`` grow with the corpus.

This is a script, not part of the package, and no test imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("ncc-shards", "torch-file", "npy-mmap", "arrow-mmap", "parquet")
FIELDS = ("edge_index", "edge_flow", "edge_position", "node_type", "x", "y")
NARROW = {"edge_index": np.int32, "edge_flow": np.int8, "edge_position": np.int32, "node_type": np.int8,
          "x": np.int32, "y": np.int64}


def status(key: str) -> float:
    """A ``/proc/self/status`` figure in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def source_items(protocol: str, count: int) -> list:
    """The first ``count`` items of the newest processed POJ-104 training split of ``protocol`` in ncc's cache
    (read from its shards: the task's prepare would also check the IR cache of every program)."""
    import torch
    from torch_geometric.data import Data

    from ncc.paths import cache_home
    from ncc.training.shards import ShardReader

    folders = sorted((p for p in (cache_home() / "classifyapp" / "processed").glob(f"{protocol}-train-*")
                      if (p / "manifest.json").is_file()), key=lambda p: p.stat().st_mtime)
    if not folders:
        raise SystemExit(f"no processed {protocol} training split in ncc's cache: run its classifyapp row once")
    shards = ShardReader(folders[-1])
    items = []
    for index in range(min(count or len(shards), len(shards))):
        data = Data()
        for key, value in shards.item(index).items():
            data[key] = value if key == "num_nodes" else torch.from_numpy(value)
        items.append(data)
    return items


def write(fmt: str, items: list, folder: Path) -> None:
    import torch

    folder.mkdir(parents=True)
    if fmt == "ncc-shards":
        shutil.rmtree(folder)
        from ncc.training.datasets import _fields
        from ncc.training.shards import ShardWriter

        first = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in items[0].items()}
        writer = ShardWriter(folder, _fields(first, items[0].num_nodes, set()), list(first))
        for item in items:
            writer.add({k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in item.items()},
                       item.num_nodes, True)
        writer.close()
    elif fmt == "torch-file":
        from torch_geometric.data import InMemoryDataset

        data, slices = InMemoryDataset.collate(items)
        torch.save((data.to_dict(), slices, data.__class__), folder / "data.pt")
    elif fmt == "npy-mmap":
        nodes = np.asarray([item.num_nodes for item in items], dtype=np.int64)
        edges = np.asarray([item.edge_index.shape[1] for item in items], dtype=np.int64)
        np.save(folder / "node_offsets.npy", np.concatenate([[0], np.cumsum(nodes)]))
        np.save(folder / "edge_offsets.npy", np.concatenate([[0], np.cumsum(edges)]))
        for name in FIELDS:
            axis = 1 if name == "edge_index" else 0
            np.save(folder / f"{name}.npy", np.concatenate([item[name].numpy() for item in items], axis=axis))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {name: pa.array([item[name].numpy().astype(NARROW[name]).reshape(-1) for item in items])
                   for name in FIELDS}
        columns["num_nodes"] = pa.array([item.num_nodes for item in items], type=pa.int64())
        table = pa.table(columns)
        if fmt == "arrow-mmap":
            with pa.OSFile(str(folder / "data.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table, max_chunksize=1024)
        else:
            pq.write_table(table, folder / "data.parquet", row_group_size=256)


def reader(fmt: str, folder: Path):
    """``(length, get(index) -> Data)`` of a written format."""
    import torch
    from torch_geometric.data import Data

    if fmt == "ncc-shards":
        from ncc.training.shards import ShardReader

        shards = ShardReader(folder)

        def get(index):
            data = Data()
            for key, value in shards.item(index).items():
                data[key] = value if key == "num_nodes" else torch.from_numpy(value)
            return data
        return len(shards), get
    if fmt == "torch-file":
        from torch_geometric.data import InMemoryDataset

        class Loaded(InMemoryDataset):
            def __init__(self):
                super().__init__(None, log=False)
                self.load(str(folder / "data.pt"))

        dataset = Loaded()
        return len(dataset), dataset.get
    if fmt == "npy-mmap":
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in FIELDS}
        node_offsets, edge_offsets = np.load(folder / "node_offsets.npy"), np.load(folder / "edge_offsets.npy")

        def get(index):
            n0, n1, e0, e1 = node_offsets[index], node_offsets[index + 1], edge_offsets[index], edge_offsets[index + 1]
            return Data(edge_index=torch.from_numpy(np.array(arrays["edge_index"][:, e0:e1])),
                        edge_flow=torch.from_numpy(np.array(arrays["edge_flow"][e0:e1])),
                        edge_position=torch.from_numpy(np.array(arrays["edge_position"][e0:e1])),
                        node_type=torch.from_numpy(np.array(arrays["node_type"][n0:n1])), num_nodes=int(n1 - n0),
                        x=torch.from_numpy(np.array(arrays["x"][n0:n1])),
                        y=torch.from_numpy(np.array(arrays["y"][index:index + 1])))
        return len(node_offsets) - 1, get

    import pyarrow as pa
    import pyarrow.parquet as pq

    def widen(row: dict) -> Data:
        n = row["num_nodes"]
        return Data(edge_index=torch.from_numpy(row["edge_index"].astype(np.int64).reshape(2, -1)),
                    edge_flow=torch.from_numpy(row["edge_flow"].astype(np.int64)),
                    edge_position=torch.from_numpy(row["edge_position"].astype(np.int64)),
                    node_type=torch.from_numpy(row["node_type"].astype(np.int64)), num_nodes=n,
                    x=torch.from_numpy(row["x"].astype(np.int64)), y=torch.from_numpy(row["y"].astype(np.int64)))

    if fmt == "arrow-mmap":
        table = pa.ipc.open_file(pa.memory_map(str(folder / "data.arrow"), "r")).read_all()
        columns = {name: table.column(name) for name in (*FIELDS, "num_nodes")}

        def get(index):
            row = {name: columns[name][index].values.to_numpy(zero_copy_only=False) for name in FIELDS}
            row["num_nodes"] = columns["num_nodes"][index].as_py()
            return widen(row)
        return table.num_rows, get

    parquet = pq.ParquetFile(folder / "data.parquet")
    size = parquet.metadata.row_group(0).num_rows
    cache: dict = {}

    def get(index):
        group = index // size
        if group not in cache:
            cache.clear()
            cache[group] = parquet.read_row_group(group).to_pydict()
        table = cache[group]
        row = {name: np.asarray(table[name][index - group * size]) for name in FIELDS}
        row["num_nodes"] = table["num_nodes"][index - group * size]
        return widen(row)
    return parquet.metadata.num_rows, get


def read_pass(fmt: str, folder: Path, batch_size: int) -> dict:
    from torch_geometric.data import Batch

    started = time.perf_counter()
    length, get = reader(fmt, folder)
    opened = time.perf_counter() - started
    rss_open = status("VmRSS")
    order = np.random.default_rng(0).permutation(length)
    started = time.perf_counter()
    checksum = 0
    for start in range(0, length, batch_size):
        batch = Batch.from_data_list([get(int(i)) for i in order[start:start + batch_size]])
        checksum += int(batch.x.sum()) + int(batch.edge_index[1].sum())
    seconds = time.perf_counter() - started
    return {"open_s": opened, "rss_after_open_mib": rss_open, "graphs_per_s": length / seconds,
            "peak_rss_mib": status("VmHWM"),
            "rss_file_after_pass_mib": status("RssFile"), "rss_anon_after_pass_mib": status("RssAnon"),
            "checksum": checksum}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", default="full")
    parser.add_argument("--graphs", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "dataset_formats.json"))
    args = parser.parse_args()
    formats = args.formats.split(",")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        skipped = [f for f in formats if f in ("arrow-mmap", "parquet")]
        formats = [f for f in formats if f not in skipped]
        if skipped:
            print(f"pyarrow is not installed: {', '.join(skipped)} skipped", file=sys.stderr)
    items = source_items(args.protocol, args.graphs)
    count = len(items)
    nodes = int(sum(item.num_nodes for item in items))
    scratch = Path(tempfile.mkdtemp(prefix="ncc-formats-"))
    results = {}
    try:
        for fmt in formats:
            started = time.perf_counter()
            write(fmt, items, scratch / fmt)
            written = time.perf_counter() - started
            size = sum(p.stat().st_size for p in (scratch / fmt).rglob("*") if p.is_file())
            results[fmt] = {"bytes": size, "write_s": written, "passes": []}
        del items
        subprocess.run(["sync"], check=False)
        for _ in range(args.rounds):
            for fmt in formats:
                done = subprocess.run([sys.executable, __file__, "--read", fmt, str(scratch / fmt),
                                       str(args.batch_size)], capture_output=True, text=True,
                                      env={**os.environ, "PYTHONPATH": str(ROOT)})
                if done.returncode:
                    raise SystemExit(f"{fmt}: {done.stderr[-2000:]}")
                results[fmt]["passes"].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"{fmt}: {results[fmt]['passes'][-1]}", file=sys.stderr)
        for fmt, result in results.items():
            passes = result["passes"]
            result.update({key: max(p[key] for p in passes) for key in passes[0] if key != "graphs_per_s"})
            result["graphs_per_s"] = statistics.median(p["graphs_per_s"] for p in passes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if len({r["checksum"] for r in results.values()}) > 1:
        raise SystemExit("the formats read back different items")
    report = {"settings": vars(args), "graphs": count, "nodes": nodes, "results": results}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1))
    print(f"{count} graphs of POJ-104's {args.protocol} training split, {nodes:,} nodes; a shuffled pass in "
          f"batches of {args.batch_size}, {args.rounds} per format, alternating\n")
    print("| format | MB on disk | write s | open s | graphs/s | peak RSS MiB | file-backed RSS after the pass MiB |")
    print("|---|---|---|---|---|---|---|")
    for fmt, r in results.items():
        print(f"| {fmt} | {r['bytes'] / 1e6:.0f} | {r['write_s']:.1f} | {r['open_s']:.2f} | {r['graphs_per_s']:.0f} | "
              f"{r['peak_rss_mib']:.0f} | {r['rss_file_after_pass_mib']:.0f} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--read"]:
        print(json.dumps(read_pass(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))))
    else:
        main()
