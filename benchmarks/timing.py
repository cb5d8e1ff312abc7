"""Timing shared by the benchmark scripts."""

import time


def best_of(repeat, fn):
    """The shortest of ``repeat`` wall-clock runs of ``fn()``, in seconds: the least disturbed by a shared machine."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
