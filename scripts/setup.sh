# Sourced by run.sh and test.sh: create .venv and install ncc with its test dependencies, once.
# torch is pinned to 2.13.0 (a CPU build where one lies on local disk) before ncc's own range is resolved,
# so pip never pulls a multi-GB CUDA build just to run the tests.
python=${PYTHON:-python3}
stamp=.venv/.ncc-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet 'torch==2.13.0'
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
