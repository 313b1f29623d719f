"""The exercises: solutions pass, student versions fail cleanly, planted bugs get the right
diagnosis, and no student code can crash or hang the checker."""
import ast
import sys
from pathlib import Path

import pytest

from nfscratch.cli import main as cli_main
from nfscratch.exercises import (EXERCISES, MarkerError, UsageError, check_file, make_student,
                                 strip_solutions)
from nfscratch.exercises.markers import solution_blocks

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "tutorials" / "exercises"
FILES = sorted(p.name for p in SOLUTIONS.glob("ex*.py"))


def test_every_exercise_has_its_solution_file():
    assert sorted(ex.filename for ex in EXERCISES.values()) == FILES


@pytest.mark.parametrize("name", FILES)
def test_solution_passes(name):
    report = check_file(SOLUTIONS / name, verbose=False)
    assert report.exit_code == 0, report.text
    assert report.results and all(r["status"] == "PASS" for r in report.results)
    assert "PASSED" in report.text


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    make_student(out, source_dir=SOLUTIONS)
    return out


@pytest.mark.parametrize("name", FILES)
def test_student_version_fails_with_not_implemented(student_dir, name):
    text = (student_dir / name).read_text()
    assert "BEGIN SOLUTION" not in text and "NotImplementedError" in text
    ast.parse(text)
    report = check_file(student_dir / name, verbose=False)
    assert report.exit_code == 1
    for r in report.results:
        assert r["status"] == "FAIL"
        assert any("NotImplementedError: not implemented yet" in row["diagnosis"]
                   for row in r["rows"]), r


def test_student_hint_is_in_the_message(student_dir):
    text = (student_dir / "ex1_mlp_backward.py").read_text()
    assert "linear_backward: not implemented yet. Hint:" in text
    assert "dW = x.T @ dy" not in text          # the solution is gone


def test_make_student_refuses_to_overwrite(student_dir, capsys):
    target = student_dir / "ex1_mlp_backward.py"
    target.write_text("# my work in progress\n")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        make_student(student_dir, source_dir=SOLUTIONS)
    assert cli_main(["exercises", "make-student", str(student_dir)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert target.read_text() == "# my work in progress\n"      # untouched
    assert cli_main(["exercises", "make-student", str(student_dir), "--overwrite"]) == 0
    assert "NotImplementedError" in target.read_text()


def test_make_student_copies_the_readme(student_dir):
    assert (student_dir / "README.md").is_file()


def test_markers_must_pair_up():
    with pytest.raises(MarkerError, match="never closed"):
        solution_blocks("def f():\n    ### BEGIN SOLUTION\n    return 1\n")
    with pytest.raises(MarkerError, match="without a matching"):
        solution_blocks("x = 1\n### END SOLUTION\n")
    with pytest.raises(MarkerError, match="inside the block"):
        solution_blocks("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n")


def test_strip_keeps_indentation_and_multiline_hints():
    src = ("class A:\n    def f(self, x):\n        ### BEGIN SOLUTION\n        ### HINT: first\n"
           "        ### HINT: second\n        y = x + 1\n        z = y * 2\n        ### END SOLUTION\n"
           "        return z\n")
    out = strip_solutions(src)
    assert '        raise NotImplementedError("f: not implemented yet. Hint: first second")' in out
    assert "# TODO: your code here (about 2 lines)." in out
    ast.parse(out)


# ------------------------------------------------------------------------------------------------
# planted bugs: (file, text in the solution, replacement, function, row, expected diagnosis)
PLANTED = [
    ("ex1_mlp_backward.py", "dW = x.T @ dy", "dW = dy.T @ x", "linear_backward", "dW", "transposed"),
    ("ex1_mlp_backward.py", "dx = dy * (1.0 - y * y)", "dx = -dy * (1.0 - y * y)", "tanh_backward",
     "dx", "sign error"),
    ("ex1_mlp_backward.py", "dx = dy @ W.T ", "dx = dy @ W ", "linear_backward",
     "linear_backward()", "shape mismatch"),
    ("ex1_mlp_backward.py", "db = dy.sum(axis=0)", "db = dy", "linear_backward", "db",
     "not summed over the batch"),
    ("ex2_planar_backward.py", "dq = dlog_det / q", "dq = 0.0 * dlog_det / q", "planar_backward",
     "dz", "log-det term is missing"),
    ("ex2_planar_backward.py", "dz = dx + da[:, None] * w", "dz = -(dx + da[:, None] * w)",
     "planar_backward", "dz", "sign error"),
    ("ex2_planar_backward.py", "dh = dx @ u - 2.0", "dh = dx @ u + 2.0", "planar_backward", "dz",
     "log-det term has the wrong sign"),
    ("ex2_planar_backward.py", "dw = da @ z + dc * u", "dw = da @ z", "planar_backward", "dw",
     "path through c = w.u is missing"),
    ("ex2_planar_backward.py", "db = np.array([da.sum()])", "db = np.array([np.nan])",
     "planar_backward", "db", "non-finite"),
    ("ex3_coupling_backward.py", "ds = dxb * zb * exp_s + dlog_det[:, None]",
     "ds = dxb * zb * exp_s", "affine_coupling_backward", "dW0", "log-det term is missing"),
    ("ex3_coupling_backward.py", "dz[:, ia] = dx[:, ia] + dza_net", "dz[:, ia] = dx[:, ia]",
     "affine_coupling_backward", "dz", "conditioner's path is missing"),
    ("ex3_coupling_backward.py", "draw = ds * (1.0 - th * th)                      # (N, d_b)  through",
     "draw = ds  # forgot the bound", "affine_coupling_backward", "dW0", "soft bound"),
    ("ex3_coupling_backward.py", "ds = -dzb * zb - dlog_det[:, None]", "ds = -dzb * zb",
     "affine_coupling_inverse_backward", "dW1", "log-det term is missing"),
    ("ex4_log_det.py", "det = 1.0 + (1.0 - h * h) * (w @ u)", "det = (1.0 - h * h) * (w @ u)",
     "planar_log_det", "log_det", "'1 +' is missing"),
    ("ex4_log_det.py", "log_det = np.log(np.abs(det))", "log_det = -np.log(np.abs(det))",
     "planar_log_det", "log_det", "inverse direction"),
    ("ex4_log_det.py", "log_det = np.log(np.abs(det))", "log_det = np.log(np.abs(det))[:, None]",
     "planar_log_det", "log_det", "right numbers, wrong shape"),
    ("ex4_log_det.py", "log_det = s.sum(axis=1)", "log_det = s", "affine_coupling_log_det",
     "log_det", "not summed over the features"),
    ("ex4_log_det.py", "J = np.stack(columns, axis=1)", "J = np.stack(columns, axis=0)",
     "numerical_jacobian", "linear map, A (3 x 2)", "transposed"),
    ("ex4_log_det.py", "(f_plus - f_minus) / (2.0 * eps)", "(f_plus - f(z)) / eps",
     "numerical_jacobian", "nonlinear map (3 -> 3)", "one-sided"),
    ("ex4_log_det.py", "_, log_abs_det = np.linalg.slogdet(numerical_jacobian(f, z[n]))",
     "log_abs_det = np.log(np.linalg.det(numerical_jacobian(f, z[n])))", "log_det_error",
     "reflection, det J = -2", "slogdet"),
]


def _plant(tmp_path, name, old, new):
    text = (SOLUTIONS / name).read_text()
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {name}"
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return path


def _row(report, function, check):
    for row in report.result(function)["rows"]:
        if row["check"] == check:
            return row
    raise KeyError(f"{function}: no row {check!r} in {report.result(function)['rows']}")


@pytest.mark.parametrize("name, old, new, function, check, expected", PLANTED,
                         ids=[f"{p[3]}:{p[5]}" for p in PLANTED])
def test_planted_bug_is_diagnosed(tmp_path, name, old, new, function, check, expected):
    report = check_file(_plant(tmp_path, name, old, new), functions=[function], verbose=False)
    assert report.exit_code == 1
    row = _row(report, function, check)
    assert row["status"] == "FAIL"
    assert expected in row["diagnosis"], report.text
    assert expected in report.text


def test_infinite_loop_times_out_and_grading_goes_on(tmp_path):
    path = _plant(tmp_path, "ex1_mlp_backward.py", "    y = cache\n",
                  "    y = cache\n    while True:\n        pass\n")
    report = check_file(path, timeout=2.0, functions=["linear_backward", "tanh_backward"],
                        verbose=False)
    assert report.exit_code == 1
    assert report.result("linear_backward")["status"] == "PASS"
    tanh = report.result("tanh_backward")
    assert tanh["status"] == "FAIL" and "timed out" in tanh["rows"][0]["diagnosis"]


def test_top_level_infinite_loop_and_syntax_error(tmp_path):
    loop = tmp_path / "ex2_planar_backward.py"
    loop.write_text((SOLUTIONS / loop.name).read_text() + "\nwhile True:\n    pass\n")
    report = check_file(loop, timeout=2.0, verbose=False)
    assert report.exit_code == 1 and "did not finish within 2 s" in report.text
    bad = tmp_path / "ex4_log_det.py"
    bad.write_text((SOLUTIONS / bad.name).read_text().replace("def planar_log_det(z, u, w, b):",
                                                              "def planar_log_det(z, u, w, b)"))
    report = check_file(bad, verbose=False)
    assert report.exit_code == 1 and "syntax error at line" in report.text


def test_process_exit_and_prints_are_contained(tmp_path):
    path = _plant(tmp_path, "ex2_planar_backward.py", "    one_m_h2 = 1.0 - h * h ",
                  "    print('debugging', h.shape)\n    import os; os._exit(3)\n"
                  "    one_m_h2 = 1.0 - h * h ")
    report = check_file(path, timeout=10.0, verbose=False)
    assert report.exit_code == 1
    assert "died" in report.result("planar_backward")["rows"][0]["diagnosis"]
    path = _plant(tmp_path, "ex2_planar_backward.py", "    one_m_h2 = 1.0 - h * h ",
                  "    print('debugging', h.shape)\n    one_m_h2 = 1.0 - h * h ")
    report = check_file(path, verbose=False)
    assert report.exit_code == 0 and "debugging (7,)" in report.text


def test_checker_does_not_import_the_student_file(tmp_path):
    before = set(sys.modules)
    check_file(SOLUTIONS / "ex1_mlp_backward.py", verbose=False)
    added = set(sys.modules) - before
    assert not any("student" in m or "ex1_mlp" in m for m in added), added


def test_grading_is_deterministic():
    a = check_file(SOLUTIONS / "ex2_planar_backward.py", verbose=False)
    b = check_file(SOLUTIONS / "ex2_planar_backward.py", verbose=False)
    assert a.results == b.results


def test_cli_exit_codes(tmp_path, student_dir, capsys):
    assert cli_main(["exercises", "check", str(SOLUTIONS / "ex2_planar_backward.py")]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "1e-06" in out            # the thresholds are stated
    assert cli_main(["exercises", "check", str(student_dir / "ex2_planar_backward.py")]) == 1
    assert cli_main(["exercises", "check", str(tmp_path / "missing.py")]) == 2
    other = tmp_path / "homework.py"
    other.write_text("x = 1\n")
    assert cli_main(["exercises", "check", str(other)]) == 2
    assert "pass --exercise" in capsys.readouterr().err
    assert cli_main(["exercises", "check", str(other), "--exercise", "planar_backward"]) == 1
    assert cli_main(["exercises", "list"]) == 0


def test_usage_errors():
    with pytest.raises(UsageError, match="no such file"):
        check_file("/nonexistent/ex1_mlp_backward.py", verbose=False)
    with pytest.raises(UsageError, match="not in exercise"):
        check_file(SOLUTIONS / "ex1_mlp_backward.py", functions=["nope"], verbose=False)
