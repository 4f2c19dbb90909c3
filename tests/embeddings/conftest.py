"""A tiny real training corpus shared by the embedding tests: C programs compiled once per session."""

from __future__ import annotations

import pytest

INT_BODIES = [
    "int f{k}(int *a, int n) {{ int s = 0; for (int i = 0; i < n; i++) s = s + a[i] * {k}; return s + n; }}",
    "long g{k}(long x, long y) {{ long t = x + y; t = t + {k}; return t - x; }}",
    "int h{k}(int x) {{ int c = 0; while (x > 0) {{ c = c + (x & {k}); x = x - 1; }} return c; }}",
]
FLOAT_BODIES = [
    "float p{k}(float x, float y) {{ return x / y + {k}.5f; }}",
    "double q{k}(double a, double b, double c) {{ double m = a / b; m = m / c; return m / (c + {k}.0); }}",
    "double r{k}(double a, double b) {{ double c = a / b; return c / (a * {k}.25); }}",
]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """(label, IR file) pairs of 12 small C programs, integer loops and straight-line float divisions."""
    from ncc.frontend import compile_batch

    folder = tmp_path_factory.mktemp("corpus")
    sources = []
    for k in range(6):
        bodies = INT_BODIES if k % 2 == 0 else FLOAT_BODIES
        path = folder / f"prog{k}.c"
        path.write_text("\n".join(body.format(k=k + 2) for body in bodies) + "\n")
        sources.append(path)
    for k in range(6, 12):
        path = folder / f"mixed{k}.c"
        path.write_text("\n".join(b.format(k=k) for b in (INT_BODIES[k % 3], FLOAT_BODIES[k % 3])) + "\n")
        sources.append(path)
    result = compile_batch(sources, workers=2, cache_dir=folder / "cache", progress=False)
    assert not result.failures, result.failures
    return [(entry.path, str(entry.ir_path)) for entry in result.entries]
