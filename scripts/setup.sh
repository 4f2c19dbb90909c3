# Sourced by run.sh and test.sh: create .venv and install ncc with its test dependencies, once.
# torch is pinned to 2.13.0 (a CPU build where one lies on local disk) before ncc's own range is resolved,
# so pip never pulls a multi-GB CUDA build just to run the tests. Each step says what it does, since pip
# stays quiet for minutes.
python=${PYTHON:-python3}
stamp=.venv/.ncc-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    started=$SECONDS
    if [ ! -x .venv/bin/python ]; then
        echo "set-up 1/4: creating .venv with $("$python" --version 2>&1)"
        "$python" -m venv .venv
    fi
    echo "set-up 2/4: upgrading pip"
    .venv/bin/python -m pip install --quiet --upgrade pip
    echo "set-up 3/4: installing torch 2.13.0 (about 200 MB for the CPU build; the longest step)"
    .venv/bin/python -m pip install --quiet 'torch==2.13.0'
    echo "set-up 4/4: installing ncc and its dependencies (torch-geometric, llvmlite, ziglang, ...)"
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    touch "$stamp"
    echo "set-up done in $((SECONDS - started)) s: ncc is .venv/bin/ncc (or run 'source .venv/bin/activate')"
fi
export PATH="$PWD/.venv/bin:$PATH"
