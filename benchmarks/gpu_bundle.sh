#!/usr/bin/env bash
# Make .gpu-bundle/: what benchmarks/gpu_run.sh needs on a GPU machine that has PyTorch and PyTorch
# Geometric but no network and no ncc install (no pip, no clang): ncc's clang (the zig binary of the
# ziglang package, xz-compressed; it alone compiles OpenCL), the devmap and thread-coarsening data, the
# inst2vec embeddings of their kernels (trained here, so both machines train the LSTM rows on the same
# vectors), and the IR of a seeded sample of POJ-104 programs for timing the embedding backends.
#
#   NCC_DATA=../shared/data bash benchmarks/gpu_bundle.sh [POJ_IR_FILES]    # default 5000
#
# Run it from the repository root after `source scripts/setup.sh`. It is idempotent (the zig archive
# is made once per ziglang version) and ends by printing the bundle's size; the whole working tree
# with the bundle should stay within what the GPU machine accepts (64 MiB where we run it).
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
bundle=.gpu-bundle
poj_files=${1:-5000}
data=${NCC_DATA:-../shared/data}
export NCC_DATA=$data PYTHONUNBUFFERED=1
mkdir -p "$bundle/data/devmap/ncc" "$bundle/results"

zig=$($python -c 'import pathlib, ziglang; print(pathlib.Path(ziglang.__file__).parent / "zig")')
version=$($python -c 'import importlib.metadata as m; print(m.version("ziglang"))')
if [[ ! -f $bundle/zig.xz || $(cat "$bundle/zig.version" 2>/dev/null) != "$version" ]]; then
    echo "compressing $zig (ziglang $version) ..."
    xz -T0 -6 -c "$zig" > "$bundle/zig.xz.part" && mv "$bundle/zig.xz.part" "$bundle/zig.xz"
    echo "$version" > "$bundle/zig.version"
fi

cp "$data"/devmap/cgo17-*.csv "$data"/devmap/SOURCE.md "$bundle/data/devmap/"
cp "$data"/devmap/ncc/kernels_ir.tar.gz "$bundle/data/devmap/ncc/"
rm -rf "$bundle/data/devmap/ncc/kernels_cl" "$bundle/data/threadcoarsening"
cp -r "$data"/devmap/ncc/kernels_cl "$bundle/data/devmap/ncc/"
mkdir -p "$bundle/data/threadcoarsening"
cp -r "$data"/threadcoarsening/{SOURCE.md,kernels_cl,kernels_ir,pact-2014-oracles.csv,pact-2014-runtimes.csv} \
    "$bundle/data/threadcoarsening/"

# The embeddings the LSTM rows read: compiled and trained here, copied without their scratch IR.
$python - <<'EOF'
from ncc.tasks.devmap import DevmapExperiment
from ncc.tasks.threadcoarsening import CoarseningExperiment

# Both platforms' rows are the same kernels, so one platform's embeddings serve both.
DevmapExperiment.prepare("amd", "results/devmap", workers=2).embeddings()
CoarseningExperiment.prepare("results/threadcoarsening", workers=2).embeddings()
EOF
for task in devmap threadcoarsening; do
    rm -rf "$bundle/results/$task"
    mkdir -p "$bundle/results/$task/inst2vec-original"
    find "results/$task/inst2vec-original" -maxdepth 1 -type f -exec cp {} "$bundle/results/$task/inst2vec-original/" \;
done

# A seeded sample of the quick protocol's POJ-104 programs, compiled as classifyapp compiles them (free
# where `ncc reproduce classifyapp` compiled them before, ~1 min per 1,000 programs on 2 cores where not).
$python - "$poj_files" "$bundle/poj-ir.tar.xz" <<'EOF'
import random, sys, tarfile
from pathlib import Path
from ncc.frontend import compile_batch
from ncc.tasks.classifyapp import load_programs, select_programs, source_folder

count, target = int(sys.argv[1]), sys.argv[2]
quick = [p for programs in select_programs(load_programs(), "quick").values() for p in programs]
chosen = random.Random(104).sample(quick, min(count, len(quick)))
folder = source_folder()
result = compile_batch([folder / p.path for p in chosen], dialect="poj104", opt_level=0, workers=2)
with tarfile.open(target, "w:xz") as tar:
    for entry in result.entries:
        tar.add(entry.ir_path, arcname=Path(entry.ir_path).name)
print(f"{target}: {len(result.entries)} of {len(chosen)} sampled POJ-104 programs compiled")
EOF

du -sh "$bundle"
echo "size of what travels (tracked files + bundle): $(( ($(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) + $(du -sb "$bundle" | cut -f1)) / 1048576 )) MiB"
