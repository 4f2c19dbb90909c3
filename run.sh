#!/usr/bin/env bash
# The main job: set up (first run only), then compile the bundled example and build its program graph.
# Today that is a demonstration of the pipeline; later it reproduces the paper tables.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh
out=out/example
ncc doctor
ncc graph examples/fib.c --format json -o "$out"
ncc graph examples/fib.c --format dot -o "$out"
if command -v dot >/dev/null 2>&1; then
    dot -Tsvg "$out/fib.dot" -o "$out/fib.svg" && echo "drawn: $out/fib.svg"
else
    echo "Graphviz is not installed: render $out/fib.dot with 'dot -Tsvg' to see the graph"
fi
