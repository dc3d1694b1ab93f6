"""Benchmarks (`make bench`): numbers printed and written to bench-results/."""
