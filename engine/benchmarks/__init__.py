"""Benchmarks: each module exposes run(...) -> str table text."""
