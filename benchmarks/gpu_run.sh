#!/usr/bin/env bash
# Every GPU measurement of the project in one call, within a time budget, on a machine with a CUDA
# GPU, PyTorch and PyTorch Geometric but no network and no ncc install; reads .gpu-bundle/ (made by
# benchmarks/gpu_bundle.sh) and runs ncc from this checkout. In order (each step capped, the short
# ones first; a step cut short keeps what it finished, and the last one takes what is left):
#   1. training throughput, GGNN and rgine, batches of 64 and 256, fp32 and bf16  (models issue)
#   2. inst2vec on the POJ-104 IR sample: torch and dense backends on the GPU     (embeddings issue)
#   3. the LSTM readout benchmark on the GPU
#   4. thread coarsening, neural rows (lstm, ggnn, rgine), 3 seeds                 (OpenCL issue)
#   5. device mapping, neural rows, both protocols, 3 seeds, seed by seed          (OpenCL issue)
#
#   OUT=/some/dir BUDGET_S=540 JOBS=12 bash benchmarks/gpu_run.sh
#
# What comes back: $OUT/gpu_run.log, $OUT/train_throughput*.json and $OUT/results.tar.gz (the finished
# folds of the OpenCL rows, every report and table). Here, `tar -xzf results.tar.gz -C results`, then
# `ncc reproduce devmap --models all --seeds 3` (and threadcoarsening) print the full tables from the
# finished folds, computing only the fast rows; a later GPU run that finds those folds (carry them
# in results/) goes on from there. DRY=1 runs every step on the CPU with tiny settings (one fold, one
# epoch, results under /tmp/ncc-gpu-dry), to check the script itself.
set -u
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results/gpu}
budget=${BUDGET_S:-540}
jobs=${JOBS:-12}
python=${PYTHON:-python3}
bundle=.gpu-bundle
mkdir -p "$out"
exec > >(tee -a "$out/gpu_run.log") 2>&1
started=$(date +%s)
export PYTHONUNBUFFERED=1 NCC_DATA=$PWD/$bundle/data NCC_CACHE=${NCC_CACHE:-/tmp/ncc-gpu-cache}

# ncc's clang, as the ziglang package would hold it, and ncc itself, without pip.
site=/tmp/ncc-gpu-site
if [[ ! -x $site/ziglang/zig ]]; then
    mkdir -p "$site/ziglang" && touch "$site/ziglang/__init__.py"
    # Python's lzma rather than xz, which a bare image may lack.
    $python -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        "$bundle/zig.xz" "$site/ziglang/zig.part" && chmod +x "$site/ziglang/zig.part" \
        && mv "$site/ziglang/zig.part" "$site/ziglang/zig"
fi
export PYTHONPATH=$site:$PWD${PYTHONPATH:+:$PYTHONPATH}
if [[ ${DRY:-0} == 1 ]]; then
    results=${RESULTS:-/tmp/ncc-gpu-dry}
    devices=cpu; seeds=1; epochs="--epochs 1"; folds="--folds 0"; steps="--steps 2 --warmup 1 --graphs 16"
    extra_embed="--epochs 1"; poj_files=200; readout="--device cpu --repeats 1 --batch 4 --length 32"; batch_sizes=4
else
    devices=cuda; seeds=3; epochs=""; folds=""; steps=""; extra_embed="--epochs 5"; poj_files=5000; readout="--device cuda --repeats 5"
    batch_sizes=64,256
    results=${RESULTS:-results}
fi
mkdir -p "$results/gpu"
cp -rn "$bundle"/results/* "$results/"

left() { echo $(( budget - ($(date +%s) - started) )); }
# step NAME SECONDS COMMAND...: run COMMAND for at most SECONDS (or what is left of the budget).
step() {
    local name=$1 limit=$2 remaining
    shift 2
    remaining=$(left)
    (( remaining < limit )) && limit=$remaining
    # Each "==" line starts a line of its own: progress bars end theirs with a carriage return.
    if (( limit < 15 )); then printf '\n== %s: skipped, %s s of the budget left\n' "$name" "$remaining"; return; fi
    printf '\n== %s (at most %s s, %s): %s\n' "$name" "$limit" "$(date -u +%T)" "$*"
    local t0=$(date +%s)
    timeout -k 10 "$limit" "$@"
    local rc=$?
    pkill -f multiprocessing.spawn 2>/dev/null  # the pool's processes of a run that was cut short
    printf '\n== %s: exit %s after %s s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))"
}

echo "== $(date -u) budget ${budget} s, $jobs processes, $(nproc) CPUs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
$python -c "import torch, torch_geometric, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
'pyg', torch_geometric.__version__, 'cuda', torch.cuda.is_available())"
$python -m ncc.cli doctor

step throughput-ggnn 120 $python benchmarks/train_throughput.py --devices $devices --batch-sizes $batch_sizes --amp \
    $steps --output "$out/train_throughput.json"
step throughput-rgine 90 $python benchmarks/train_throughput.py --model rgine --devices $devices \
    --batch-sizes $batch_sizes --amp $steps --output "$out/train_throughput_rgine.json"
rm -rf /tmp/ncc-poj-ir && mkdir -p /tmp/ncc-poj-ir
$python -c 'import sys, tarfile
archive = tarfile.open(sys.argv[1])
archive.extractall(sys.argv[2], members=archive.getmembers()[:int(sys.argv[3])], filter="data")' \
    "$bundle/poj-ir.tar.xz" /tmp/ncc-poj-ir "$poj_files"
step embed-torch 90 $python -m ncc.cli embed /tmp/ncc-poj-ir -o "$results/gpu/embed-torch" --backend torch \
    --workers "$(nproc)" $extra_embed
step embed-dense 60 $python -m ncc.cli embed /tmp/ncc-poj-ir -o "$results/gpu/embed-dense" --backend dense \
    --workers "$(nproc)"
step lstm-readout 30 $python benchmarks/lstm_readout.py $readout --output "$results/gpu/lstm_readout.json"
step threadcoarsening 120 $python -m ncc.cli reproduce threadcoarsening --models lstm,ggnn,rgine --seeds $seeds \
    --workers "$jobs" $epochs $folds -o "$results/threadcoarsening"
step devmap "$budget" $python -m ncc.cli reproduce devmap --models lstm,ggnn,rgine --seeds $seeds --workers "$jobs" \
    $epochs $folds -o "$results/devmap"

(cd "$results" && find . \( -name 'fold-*.npy' -o -name '*.md' -o -name '*.csv' -o -name 'report.json' \
    -o -name 'lstm_readout.json' \) -print0 | tar -czf "$out/results.tar.gz" --null -T -)
printf '\n'
echo "== done in $(( $(date +%s) - started )) s; $(tar -tzf "$out/results.tar.gz" | wc -l) files in $out/results.tar.gz"
