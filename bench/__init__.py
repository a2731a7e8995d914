"""Benchmarks of the ``streaming`` app: latency, throughput, concurrency, CPU, memory and queries.

``python -m bench`` (from the repository's root) runs every scenario and prints a table; ``--tiny``
is a run of well under a minute. See ``bench.scenarios`` for what each scenario measures.
"""
