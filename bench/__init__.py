"""Benchmarks against peer clients; run by `make bench`, never part of the test run."""
