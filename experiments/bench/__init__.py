"""The benchmark's workloads, the candidates that implement them, and the
measurements (``experiments/benchmark.py`` is the command)."""
