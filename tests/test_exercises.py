"""The exercises: solutions pass, student versions fail cleanly, planted bugs get the right
diagnosis, and no student code can crash or hang the checker."""
import ast
import csv
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from nfscratch.cli import main as cli_main
from nfscratch.exercises import (EXERCISES, MarkerError, UsageError, check_file, hint_text,
                                 make_student, strip_solutions)
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


def test_handout_has_no_solution_and_no_hints_by_default(student_dir):
    for name in FILES:
        text = (student_dir / name).read_text()
        assert "HINT" not in text and "Hint 1" not in text, name
        assert f"nfscratch exercises hint {name}" in text          # where the hints are
    text = (student_dir / "ex1_mlp_backward.py").read_text()
    assert "linear_backward: not implemented yet" in text
    assert "dW = x.T @ dy" not in text          # the solution is gone


def test_with_hints_writes_the_ladders_as_comments(tmp_path):
    make_student(tmp_path, source_dir=SOLUTIONS, with_hints=True)
    text = (tmp_path / "ex3_coupling_backward.py").read_text()
    assert "# Hint 1:" in text and "# Hint 3:" in text and "BEGIN SOLUTION" not in text
    ast.parse(text)


def test_handouts_are_readable_like_sources(tmp_path):
    old = os.umask(0o022)
    try:
        written = make_student(tmp_path / "a", source_dir=SOLUTIONS)
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in written)
        os.umask(0o077)                  # the umask decides, as for any new file
        written = make_student(tmp_path / "b", source_dir=SOLUTIONS)
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)
    finally:
        os.umask(old)
    assert not list((tmp_path / "a").glob(".*.tmp"))


@pytest.mark.parametrize("name", FILES)
def test_every_exercise_has_a_three_step_ladder_that_is_not_the_code(name):
    text = (SOLUTIONS / name).read_text()
    blocks = solution_blocks(text)
    assert blocks
    lines = text.splitlines()
    for blk in blocks:
        assert len(blk["hints"]) == 3, (name, blk["function"])
        code = [ln.split("#")[0].strip() for ln in lines[blk["begin"] + 1:blk["end"]]]
        code = [c for c in code if len(c) > 12]
        for hint in blk["hints"]:
            assert not any(c in hint for c in code), (blk["function"], hint)
    assert "mlp_backward(np.concatenate" not in " ".join(
        h for blk in blocks for h in blk["hints"])


def test_hint_ladder_parsing():
    src = ("def f(x):\n    ### BEGIN SOLUTION\n    ### HINT 1: a\n    ### HINT 1: b\n"
           "    ### HINT 2: c\n    y = x\n    ### END SOLUTION\n    return y\n")
    assert solution_blocks(src)[0]["hints"] == ["a b", "c"]
    old_style = src.replace("### HINT 1:", "### HINT:").replace("### HINT 2: c\n", "")
    assert solution_blocks(old_style)[0]["hints"] == ["a b"]
    with pytest.raises(MarkerError, match="without gaps"):
        solution_blocks(src.replace("HINT 2", "HINT 3"))


def test_hint_command_reveals_one_level_at_a_time(student_dir, capsys):
    path = student_dir / "ex2_planar_backward.py"
    assert cli_main(["exercises", "hint", str(path)]) == 0
    one = capsys.readouterr().out
    assert "level 1 of 3" in one and "  1. " in one and "  2. " not in one and "--level 2" in one
    assert cli_main(["exercises", "hint", str(path), "--level", "3"]) == 0
    three = capsys.readouterr().out
    assert "  3. " in three and "last hint" in three
    # a renamed hand-out is found by its EXERCISE line; --function picks one function
    renamed = student_dir / "my_homework.py"
    renamed.write_text((student_dir / "ex1_mlp_backward.py").read_text())
    assert cli_main(["exercises", "hint", str(renamed), "--function", "tanh_backward"]) == 0
    out = capsys.readouterr().out
    assert "tanh_backward" in out and "linear_backward" not in out
    assert cli_main(["exercises", "hint", str(path), "--level", "0"]) == 2
    assert cli_main(["exercises", "hint", str(path), "--function", "nope"]) == 2
    assert cli_main(["exercises", "hint", str(student_dir / "missing.py")]) == 2
    err = capsys.readouterr().err
    assert "level" in err and "nope" in err and "no such file" in err and "Traceback" not in err


def test_hint_only_for_unfinished_functions(tmp_path):
    text = (SOLUTIONS / "ex1_mlp_backward.py").read_text()
    half = strip_solutions(text).replace(
        '    raise NotImplementedError("linear_backward: not implemented yet")',
        "    dx, dW, db = dy @ W.T, x.T @ dy, dy.sum(0)", 1)
    path = tmp_path / "ex1_mlp_backward.py"
    path.write_text(half)
    out = hint_text(path)
    assert "tanh_backward" in out and "mlp_backward" in out and "linear_backward" not in out


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
    assert '        raise NotImplementedError("f: not implemented yet")' in out
    assert "        # TODO: your code here (about 2 lines)." in out
    assert "first" not in out
    assert "        # Hint 1: first second" in strip_solutions(src, with_hints=True)
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
    ("ex1_mlp_backward.py", "dx = dy * (1.0 - y * y)",
     "dx = (dy * (1.0 - y * y)).astype(np.float32)", "tanh_backward", "dx", "dtype float32"),
    ("ex4_log_det.py", "log_det = s.sum(axis=1)", "log_det = s.sum(axis=0)",
     "affine_coupling_log_det", "log_det", "sum over the features (axis=1)"),
    ("ex4_log_det.py", "log_det = np.log(np.abs(det))", "log_det = np.log(det)",
     "planar_log_det", "log_det, w.u = -2.5: det < 0 for some z", "the abs is missing"),
    ("ex3_coupling_backward.py", "dz = np.empty_like(dx)\n    dz[:, ia] = dx[:, ia] + dza_net",
     "dz = dx\n    dz[:, ia] += dza_net", "affine_coupling_backward", "upstream unchanged",
     "in place"),
    ("ex2_planar_backward.py", "dz = dx + da[:, None] * w", "dz = da[:, None] * w",
     "planar_backward", "dz", "direct path is missing"),
    ("ex2_planar_backward.py", "du = h @ dx + dc * w", "du = dx.sum(axis=0) + dc * w",
     "planar_backward", "du", "not weighted by h"),
    ("ex2_planar_backward.py", "db = np.array([da.sum()])", "db = da.sum()", "planar_backward",
     "db", "np.array([value])"),
    ("ex3_coupling_backward.py", "dz[:, ib] = dxb * exp_s", "dz[:, ib] = dxb",
     "affine_coupling_backward", "dz", "missing its scale"),
    ("ex3_coupling_backward.py", "dxb = dzb * exp_neg_s ", "dxb = dzb / exp_neg_s ",
     "affine_coupling_inverse_backward", "dW0", "scale of the other direction"),
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


def test_in_place_upstream_is_not_blamed_on_the_forward(tmp_path):
    path = _plant(tmp_path, "ex3_coupling_backward.py",
                  "dz = np.empty_like(dx)\n    dz[:, ia] = dx[:, ia] + dza_net",
                  "dz = dx\n    dz[:, ia] += dza_net")
    report = check_file(path, functions=["affine_coupling_backward"], verbose=False)
    assert "was the forward edited" not in report.text, report.text


def test_float32_somewhere_below_is_named(tmp_path):
    path = _plant(tmp_path, "ex1_mlp_backward.py", "dx = dy * (1.0 - y * y)",
                  "dx = (dy * (1.0 - y * y)).astype(np.float32)")
    report = check_file(path, functions=["tanh_backward", "mlp_backward"], verbose=False)
    mlp = report.result("mlp_backward")
    failing = [r for r in mlp["rows"] if r["status"] == "FAIL"]
    assert failing and all("float32" in r["diagnosis"] for r in failing), report.text


def test_syntax_error_in_a_renamed_file_is_reported_as_such(tmp_path, capsys):
    bad = tmp_path / "my_homework.py"
    bad.write_text((SOLUTIONS / "ex4_log_det.py").read_text().replace(
        "def planar_log_det(z, u, w, b):", "def planar_log_det(z, u, w, b)"))
    report = check_file(bad, verbose=False)
    assert report.exercise.id == "log_det"
    assert report.exit_code == 1 and "syntax error at line" in report.text
    assert "EXERCISE" not in report.text
    # without an EXERCISE line the usage error still mentions the syntax error
    bad.write_text("def f(:\n    pass\n")
    assert cli_main(["exercises", "check", str(bad)]) == 2
    assert "syntax error at line 1" in capsys.readouterr().err


def test_redirected_stdout_and_a_loop_time_out(tmp_path):
    path = _plant(tmp_path, "ex1_mlp_backward.py", "    y = cache\n",
                  "    y = cache\n    import os\n    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)\n"
                  "    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)\n    while True:\n        pass\n")
    start = time.monotonic()
    report = check_file(path, timeout=2.0, functions=["linear_backward", "tanh_backward"],
                        verbose=False)
    assert time.monotonic() - start < 30
    assert report.result("linear_backward")["status"] == "PASS"
    assert "timed out" in report.result("tanh_backward")["rows"][0]["diagnosis"]


def test_closed_channel_and_a_loop_are_killed(tmp_path):
    path = _plant(tmp_path, "ex1_mlp_backward.py", "    y = cache\n",
                  "    y = cache\n    import os\n    os.closerange(0, 1024)\n"
                  "    while True:\n        pass\n")
    start = time.monotonic()
    report = check_file(path, timeout=20.0, functions=["tanh_backward"], verbose=False)
    assert time.monotonic() - start < 15          # not the function's time limit: EOF is enough
    assert "stopped talking" in report.result("tanh_backward")["rows"][0]["diagnosis"]


def test_os_system_in_student_code_does_not_crash_the_grader(tmp_path):
    path = _plant(tmp_path, "ex1_mlp_backward.py", "    y = cache\n",
                  "    y = cache\n    import os\n    os.system('echo 7; echo 1>&2 oops')\n")
    report = check_file(path, functions=["tanh_backward"], verbose=False)
    assert report.exit_code == 0, report.text


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_timeout_must_be_finite_and_positive(value, capsys):
    path = str(SOLUTIONS / "ex1_mlp_backward.py")
    assert cli_main(["exercises", "check", path, f"--timeout={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "timeout" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def class_folder(tmp_path_factory, student_dir):
    """Three submissions: a full solution, an untouched hand-out, and one that would poison
    a shared process (it plants a marker that another submission checks for)."""
    root = tmp_path_factory.mktemp("submissions")
    (root / "alice").mkdir()
    (root / "alice" / "ex2_planar_backward.py").write_text(
        (SOLUTIONS / "ex2_planar_backward.py").read_text() + "\nimport numpy\nnumpy.POISON = 1\n")
    (root / "bob").mkdir()
    (root / "bob" / "ex2_planar_backward.py").write_text(
        (student_dir / "ex2_planar_backward.py").read_text())
    (root / "carol.py").write_text(
        (SOLUTIONS / "ex1_mlp_backward.py").read_text()
        + "\nimport numpy\nassert not hasattr(numpy, 'POISON'), 'shared process'\n")
    return root


def test_grade_writes_one_table(class_folder, tmp_path, capsys):
    report = tmp_path / "grades.csv"
    assert cli_main(["exercises", "grade", str(class_folder), "-o", str(report)]) == 0
    err = capsys.readouterr().err
    assert "[1/3]" in err and "[3/3]" in err                      # progress, one line each
    rows = {r["file"]: r for r in csv.DictReader(report.open())}
    assert set(rows) == {"alice/ex2_planar_backward.py", "bob/ex2_planar_backward.py", "carol.py"}
    assert rows["alice/ex2_planar_backward.py"]["planar_backward"] == "PASS"
    assert rows["alice/ex2_planar_backward.py"]["score %"] == "100"
    assert rows["bob/ex2_planar_backward.py"]["planar_backward"] == "FAIL"
    assert "NotImplementedError" in rows["bob/ex2_planar_backward.py"]["first problem"]
    carol = rows["carol.py"]                           # graded in a process of its own
    assert carol["exercise"] == "mlp_backward" and carol["passed"] == "3", carol
    assert stat.S_IMODE(report.stat().st_mode) & 0o044            # readable like any file
    # refuses to overwrite (before grading anything), unless told
    before = report.read_text()
    assert cli_main(["exercises", "grade", str(class_folder), "-o", str(report)]) == 2
    assert "--overwrite" in capsys.readouterr().err and report.read_text() == before
    md = tmp_path / "grades.md"
    assert cli_main(["exercises", "grade", str(class_folder), "-o", str(md)]) == 0
    text = md.read_text()
    assert text.startswith("| file | exercise |") and "| carol.py | mlp_backward |" in text


def test_grade_usage_errors(tmp_path, capsys):
    assert cli_main(["exercises", "grade", str(tmp_path / "nope")]) == 2
    assert cli_main(["exercises", "grade", str(tmp_path)]) == 2               # no submissions
    (tmp_path / "x.py").write_text("x = 1\n")
    assert cli_main(["exercises", "grade", str(tmp_path), "-o", str(tmp_path / "r.txt")]) == 2
    assert cli_main(["exercises", "grade", str(tmp_path), "--timeout", "inf"]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "no submissions" in err and ".csv or .md" in err
    assert "Traceback" not in err
    # an output that cannot be written is refused before any grading
    assert cli_main(["exercises", "grade", str(tmp_path), "-o",
                     str(tmp_path / "x.py" / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "[1/" not in err
    assert cli_main(["exercises", "make-student", str(tmp_path / "x.py" / "out")]) == 1
    assert "out_dir: cannot write" in capsys.readouterr().err


def _alive(pid):
    """A process that exists and is not a zombie (nobody may reap it in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_what_the_student_code_started_is_killed_too(tmp_path):
    pid_file = tmp_path / "pid"
    path = _plant(tmp_path, "ex1_mlp_backward.py", "    y = cache\n",
                  "    y = cache\n    import subprocess, sys\n"
                  "    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
                  f"    open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
                  "    while True:\n        pass\n")
    report = check_file(path, timeout=3.0, functions=["tanh_backward"], verbose=False)
    assert "timed out" in report.result("tanh_backward")["rows"][0]["diagnosis"]
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def test_top_level_redirect_and_loop_time_out(tmp_path):
    path = tmp_path / "ex2_planar_backward.py"
    path.write_text((SOLUTIONS / path.name).read_text()
                    + "\nimport os\nos.dup2(os.open(os.devnull, os.O_WRONLY), 1)\n"
                      "os.system('echo 12')\nwhile True:\n    pass\n")
    report = check_file(path, timeout=2.0, verbose=False)
    assert report.exit_code == 1 and "did not finish within 2 s" in report.text


def test_a_file_that_is_not_python_is_reported(tmp_path):
    path = tmp_path / "mine.py"
    path.write_bytes(b'EXERCISE = "log_det"\nx = 1\x00\n')
    report = check_file(path, verbose=False)
    assert report.exit_code == 1 and "not valid Python source" in report.text
