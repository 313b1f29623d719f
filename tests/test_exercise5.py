"""Exercise 5 (MADE): planted bugs in the solution get their precise diagnosis.

The generic checks (the solution passes, the student version fails with NotImplementedError)
run for every exercise file in tests/test_exercises.py.
"""
from pathlib import Path

import pytest

from nfscratch.exercises import check_file

SOLUTION = Path(__file__).resolve().parents[1] / "tutorials" / "exercises" / "ex5_made.py"

# (text in the solution, replacement, function, row, expected diagnosis)
PLANTED = [
    ("return (m_out[None, :] >= m_in[:, None])", "return (m_out[None, :] > m_in[:, None])",
     "hidden_mask", "mask", "iff m_out >= m_in"),
    ("return (m_out[None, :] >= m_in[:, None])", "return (m_in[:, None] >= m_out[None, :])",
     "hidden_mask", "mask", "compared the other way round"),
    ("return (m_out[None, :] >= m_in[:, None]).astype(np.float64)",
     "return (m_out[None, :] >= m_in[:, None]).astype(np.float64).T",
     "hidden_mask", "mask", "transposed"),
    ("return (m_out[None, :] > m_prev[:, None])", "return (m_out[None, :] >= m_prev[:, None])",
     "output_mask", "mask", "output i would then see input i itself"),
    ("m_out = np.tile(m_inputs, k)  ", "m_out = np.repeat(m_inputs, k)  ", "output_mask", "mask",
     "np.repeat interleaves"),
    ("m_out = np.tile(m_inputs, k)  ", "m_out = m_inputs  ", "output_mask", "mask",
     "expected shape (5, 8), got (5, 4)"),
    ('grads[f"W{l}"] = (h_in.T @ dpre) * M ', 'grads[f"W{l}"] = (h_in.T @ dpre) ', "made_backward",
     "dW1", "dW is not multiplied by the mask"),
    ('dpre = dh if l == len(cache) - 1 else dh * (1.0 - cache[l][3] ** 2)',
     'dpre = dh', "made_backward", "dW0", "FAIL"),
    ('grads[f"b{l}"] = dpre.sum(axis=0)', 'grads[f"b{l}"] = dpre', "made_backward", "db1",
     "not summed over the batch"),
]


@pytest.mark.parametrize("old, new, function, check, expected", PLANTED,
                         ids=[f"{p[2]}:{p[4]}" for p in PLANTED])
def test_planted_bug_is_diagnosed(tmp_path, old, new, function, check, expected):
    text = SOLUTION.read_text()
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    path = tmp_path / SOLUTION.name
    path.write_text(text.replace(old, new))
    report = check_file(path, functions=[function], verbose=False)
    row = next(r for r in report.result(function)["rows"] if r["check"] == check)
    assert report.exit_code == 1 and row["status"] == "FAIL", report.text
    if expected != "FAIL":
        assert expected in row["diagnosis"], report.text


def test_backprop_through_the_unmasked_weights_is_named(tmp_path):
    """The masks are applied in the forward pass; a backward that rebuilds W ⊙ M from the raw
    weights would need them -- here the student's cache holds W ⊙ M, so planting the bug means
    undoing the mask: the grader names it from the reference variant."""
    text = SOLUTION.read_text()
    old = "        W = params[f\"W{l}\"] * M                                 # (fan_in, fan_out)\n"
    assert text.count(old) == 1
    new = old + "        W_raw = params[f\"W{l}\"]\n"
    text = text.replace(old, new).replace("caches.append((h, W, M))", "caches.append((h, W_raw, M))")
    path = tmp_path / SOLUTION.name
    path.write_text(text)
    report = check_file(path, functions=["made_backward"], verbose=False)
    row = next(r for r in report.result("made_backward")["rows"] if r["check"] == "dx")
    assert row["status"] == "FAIL"
    assert "backpropagated through W instead of W ⊙ M" in row["diagnosis"], report.text
