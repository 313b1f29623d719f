"""nfscratch as users install it: a built wheel in a fresh virtual environment, not editable.

The course (tutorials and exercise solutions) must travel inside the wheel, so that every
``exercises`` command and ``nfscratch tutorials`` work without the source tree. The venv is made
with ``--system-site-packages`` and the wheel installed with ``--no-deps``, so no network is
needed; every command runs from an empty folder with no PYTHONPATH, so only the installed copy
can answer. Marked ``wheel`` (deselect with ``-m "not wheel"``); it takes well under a minute.
"""
import os
import shutil
import stat
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 120           # seconds for any one step: a hang fails the test instead of the suite

pytestmark = pytest.mark.wheel


def _run(cmd, cwd, env, ok=(0,)):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=LIMIT)
    assert proc.returncode in ok, f"{cmd} -> {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin dir, environment, an empty working folder) of a venv with the wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INDEX"] = "1"                     # never the network
    src = tmp / "src"                             # a clean copy: no build/ left in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "figures",
        "benchmarks", ".benchmarks", "nfscratch_out"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(tmp / "dist"), str(src)], tmp, env)
    wheel = next((tmp / "dist").glob("nfscratch-*.whl"))
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(tmp / "venv")
    bindir = tmp / "venv" / ("Scripts" if os.name == "nt" else "bin")
    _run([sys.executable, "-m", "pip", "--python", str(bindir / "python"), "install",
          "--no-deps", "-q", str(wheel)], tmp, env)
    work = tmp / "work"
    work.mkdir()
    return bindir, env, work


def test_the_installed_copy_is_the_one_that_runs(installed):
    bindir, env, work = installed
    out = _run([str(bindir / "python"), "-c",
                "import nfscratch.exercises.files as f; print(f.__file__); print(f.course_dir())"],
               work, env).stdout.split()
    venv_dir = bindir.parent
    assert Path(out[0]).is_relative_to(venv_dir) and Path(out[1]).is_relative_to(venv_dir)
    assert Path(out[1]).name == "course"


def test_exercise_commands_work_installed(installed):
    bindir, env, work = installed
    nf = str(bindir / "nfscratch")
    _run([nf, "exercises", "make-student", "handout"], work, env)
    handout = work / "handout"
    names = sorted(p.name for p in handout.glob("ex*.py"))
    assert names[:4] == ["ex1_mlp_backward.py", "ex2_planar_backward.py",
                         "ex3_coupling_backward.py", "ex4_log_det.py"]
    assert stat.S_IMODE((handout / names[0]).stat().st_mode) == 0o666 & ~_umask()
    hint = _run([nf, "exercises", "hint", "handout/ex2_planar_backward.py", "--level", "2"],
                work, env).stdout
    assert "planar_backward" in hint and "  2. " in hint
    # the grader's worker process must find the installed package too: the hand-out fails
    # with NotImplementedError (not with an import error of the worker)
    (work / "class").mkdir()
    shutil.copy(handout / "ex2_planar_backward.py", work / "class" / "ex2_planar_backward.py")
    grades = _run([nf, "exercises", "grade", "class", "-o", "grades.md"], work, env)
    table = (work / "grades.md").read_text()
    assert "[1/1]" in grades.stderr and table.startswith("| file |")
    assert "| FAIL |" in table and "NotImplementedError" in table


def test_tutorials_command_works_installed(installed):
    bindir, env, work = installed
    nf = str(bindir / "nfscratch")
    _run([nf, "tutorials", "tut"], work, env)
    scripts = sorted(p.name for p in (work / "tut").glob("[0-9][0-9]*_*.py"))
    assert len(scripts) >= 7 and (work / "tut" / "README.md").is_file()
    again = _run([nf, "tutorials", "tut"], work, env, ok=(1,))
    assert "--overwrite" in again.stderr and "Traceback" not in again.stderr
    pytest.importorskip("jupytext")
    _run([nf, "tutorials", "nb", "--notebooks"], work, env)
    assert len(list((work / "nb").glob("*.ipynb"))) == len(scripts)


def _umask():
    old = os.umask(0)
    os.umask(old)
    return old
