"""Timing a call the way the tutorials do: the fastest of many repetitions.

On a shared machine a single timing mixes the call's own cost with whatever else ran at the
same moment. Other work can only make a run slower, never faster, so the fastest of many runs
is the best estimate of what the call itself costs. (``benchmarks/run.py`` times training steps
more carefully, in rotating blocks with medians; this is the quick version for a notebook.)
"""
import time

from ._validate import check_callable, check_positive_float, check_positive_int

__all__ = ["best_time"]


def best_time(fn, budget=0.2, min_runs=3):
    """Fastest single run of ``fn()`` in seconds.

    ``fn`` is called once untimed first (compilation, caches, lazy allocation), then repeated
    until ``budget`` seconds have been spent on timed runs and at least ``min_runs`` runs were
    made.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones(1000)
    >>> best_time(lambda: x.sum(), budget=0.001) > 0
    True
    """
    if check_callable(fn, "fn") is None:
        raise TypeError("fn: expected a function of no arguments to time, got None.")
    budget = check_positive_float(budget, "budget", what="a positive number of seconds")
    min_runs = check_positive_int(min_runs, "min_runs")
    fn()
    best, spent, runs = float("inf"), 0.0, 0
    while spent < budget or runs < min_runs:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return best
