"""nfscratch.timing.best_time: what it returns, how often it calls, what it refuses."""
import pytest

from nfscratch.timing import best_time


def test_best_time_is_the_fastest_run_and_calls_at_least_min_runs_plus_warmup():
    calls = []
    t = best_time(lambda: calls.append(1), budget=1e-6, min_runs=5)
    assert len(calls) == 6                  # one untimed warm-up, then five timed runs
    assert 0.0 < t < 0.1


def test_best_time_keeps_going_until_the_budget_is_spent():
    calls = []
    best_time(lambda: calls.append(sum(range(100))), budget=0.01, min_runs=1)
    assert len(calls) > 3


@pytest.mark.parametrize("kwargs, name", [
    (dict(fn=None), "fn"), (dict(fn=3), "fn"),
    (dict(fn=lambda: None, budget=0.0), "budget"), (dict(fn=lambda: None, budget="1"), "budget"),
    (dict(fn=lambda: None, min_runs=0), "min_runs"), (dict(fn=lambda: None, min_runs=2.5), "min_runs"),
])
def test_best_time_refuses_bad_arguments_by_name(kwargs, name):
    with pytest.raises((TypeError, ValueError), match=name):
        best_time(**kwargs)
