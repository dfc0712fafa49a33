"""Benchmarks for swarmstream (not part of the installed package)."""
