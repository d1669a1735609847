"""Benchmarks as commands: ``python -m medviz.bench <name>`` prints a table and writes JSON."""
