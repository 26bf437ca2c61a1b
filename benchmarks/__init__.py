"""Benchmark harnesses for cowrite (see ``benchmarks/README.md``)."""
