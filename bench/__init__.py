"""edgeprune's benchmarks on real models and data: run each from the repository root as ``python -m bench.NAME``.

Shared paths, the machine record and result writers are in ``bench.common``; committed results in
``bench/results/``. Nothing here is installed with the package.
"""
