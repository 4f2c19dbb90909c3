"""ncc's data set cards: ``<name>/README.md`` (origin, licence, counts, caveats) and ``<name>/pins.json``.

This folder is the repository's top-level ``datasets/``; pyproject.toml maps it to the package
``ncc.datasets`` so that the pins ship in the wheel. :func:`ncc.download.pinned` reads them.
"""
