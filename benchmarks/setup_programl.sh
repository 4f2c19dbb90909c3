#!/usr/bin/env bash
# Set up ProGraML 0.3.2's graph builder (llvm2graph-10) as a peer for benchmarks/graph_build.py.
#
# Usage:  bash benchmarks/setup_programl.sh [VENV_DIR]      (default: $PROGRAML_VENV or /tmp/programl-venv)
#
# Idempotent: re-running it only installs what is missing. It
#   1. installs Debian's libtinfo5 (llvm2graph-10 links against libtinfo.so.5) and clang-14 when missing,
#   2. creates a venv separate from the project's (.venv must never see ProGraML or its protobuf pin),
#   3. installs programl==0.3.2 without its dependencies, plus the few it needs at import time,
#   4. writes an empty stub module `dgl` (ProGraML imports DGL at package import; its pin breaks installs),
#   5. finds llvm2graph-10 inside the package and checks that it turns a tiny LLVM-10 .ll into a graph.
# The last line it prints is the path of the llvm2graph-10 binary.
set -euo pipefail

VENV="${1:-${PROGRAML_VENV:-/tmp/programl-venv}}"
PYTHON="${PYTHON:-python3}"

log() { echo "[setup_programl] $*" >&2; }

# --- 1. system packages ---------------------------------------------------------------------------------
missing=()
dpkg -s libtinfo5 >/dev/null 2>&1 || missing+=(libtinfo5)
command -v clang-14 >/dev/null 2>&1 || missing+=(clang-14)
if ((${#missing[@]})); then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- 2. venv ---------------------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

# --- 3. packages -----------------------------------------------------------------------------------------
if [ "$("$VPY" -c 'import importlib.metadata as m; print(m.version("programl"))' 2>/dev/null)" != "0.3.2" ]; then
    log "pip install --no-deps programl==0.3.2"
    "$VPY" -m pip install -q --no-deps "programl==0.3.2" >&2
fi
if ! "$VPY" -c 'import google.protobuf, absl, grpc, networkx, numpy, tqdm' 2>/dev/null; then
    log "pip install ProGraML's runtime dependencies"
    "$VPY" -m pip install -q 'protobuf<3.21' absl-py grpcio 'networkx<3.6' numpy tqdm >&2
fi

# --- 4. dgl stub -----------------------------------------------------------------------------------------
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# `import programl` also reads dgl.heterograph.DGLHeteroGraph (for a type hint), so the stub has that name.
if [ ! -f "$SITE/dgl/heterograph.py" ]; then
    log "writing stub module dgl in $SITE"
    mkdir -p "$SITE/dgl"
    echo '"""Empty stand-in for DGL: ProGraML imports it, the graph builder never uses it."""' \
        > "$SITE/dgl/__init__.py"
    printf '"""Stub."""\n\n\nclass DGLHeteroGraph:\n    """Placeholder for a type hint in programl.transform_ops."""\n' \
        > "$SITE/dgl/heterograph.py"
fi

# --- 5. llvm2graph-10 ------------------------------------------------------------------------------------
PKG="$("$VPY" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("programl").origin))')"
BIN="$(find "$PKG" -name 'llvm2graph-10' -type f | head -n 1)"
if [ -z "$BIN" ]; then
    log "llvm2graph-10 not found under $PKG"
    exit 1
fi
chmod +x "$BIN" 2>/dev/null || true

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/tiny.ll" <<'EOF'
; ModuleID = 'tiny'
target datalayout = "e-m:e-i64:64-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

define i32 @add(i32 %a, i32 %b) {
entry:
  %s = add nsw i32 %a, %b
  %c = icmp sgt i32 %s, 0
  br i1 %c, label %pos, label %neg
pos:
  ret i32 %s
neg:
  %n = sub nsw i32 0, %s
  ret i32 %n
}

define i32 @main() {
entry:
  %r = call i32 @add(i32 1, i32 2)
  ret i32 %r
}
EOF
if ! "$BIN" < "$TMP/tiny.ll" > "$TMP/tiny.pbtxt" 2> "$TMP/err"; then
    log "llvm2graph-10 failed on a tiny module:"
    cat "$TMP/err" >&2
    exit 1
fi
nodes="$(grep -c '^node {' "$TMP/tiny.pbtxt" || true)"
if [ "${nodes:-0}" -lt 5 ]; then
    log "llvm2graph-10 printed no graph (found $nodes nodes)"
    head -n 20 "$TMP/tiny.pbtxt" >&2
    exit 1
fi
"$VPY" -c 'import programl' || { log "'import programl' fails in $VENV"; exit 1; }
log "ok: llvm2graph-10 built a $nodes-node graph from a tiny module"
echo "$BIN"
