"""Benchmarks. Each prints ratios against a baseline measured in the same run (the machines
are shared and noisy; absolute times drift). Run one with ``python -m bench NAME``."""
