"""Benchmarks of container runtimes: workloads, raw samples, statistics and fio output parsing."""
