"""Every tutorial executes as a notebook and shows its figures; the figure helper saves scripts' figures.

Each ``tutorials/NN_*.py`` is converted with jupytext and executed by nbclient in a real
``python3`` kernel, in quick mode (``NFSCRATCH_QUICK=1``), with this checkout first on the
kernel's path. Every code cell that calls ``show(`` must produce an ``image/png`` output, and no
output may be the bare ``<Figure size ...>`` text that a matplotlib Figure prints when nothing can
render it. Plain-script behaviour of :func:`nfscratch.plotting.show` (numbered files in a fresh
run folder, never an overwrite, opt-out) is tested on a two-figure script, which is much cheaper
than running the tutorials a second time.
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]*_*.py"))
CELL_TIMEOUT = 600          # seconds per cell; quick-mode cells take a few seconds
SHOW_CALL = re.compile(r"(?<![\w.])show\(")
FIGURE_REPR = re.compile(r"<Figure size \d")


def _env(**extra):
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _calls_show(source):
    return any(SHOW_CALL.search(line) for line in source.splitlines()
               if not line.lstrip().startswith("#"))


def _texts(output):
    """Every piece of text an output carries (stream text, text/plain, error values)."""
    if output.get("output_type") == "stream":
        return [output.get("text", "")]
    data = output.get("data", {})
    text = data.get("text/plain", "")
    return ["".join(text) if isinstance(text, list) else text]


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 7, [p.name for p in TUTORIALS]


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_executes_as_a_notebook_and_shows_every_figure(path, tmp_path):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = jupytext.read(path)
    figures = tmp_path / "figures"
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute(env=_env(NFSCRATCH_QUICK="1", NFSCRATCH_FIGURES=str(figures)))
    print(f"{path.name}: executed as a notebook in {time.perf_counter() - t0:.1f} s")

    show_cells = 0
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"{path.name}, code cell {k}:\n{cell.source[:300]}"
        for out in cell.outputs:
            for text in _texts(out):
                assert not FIGURE_REPR.search(text), f"a figure printed as text in {where}"
        if _calls_show(cell.source):
            show_cells += 1
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert images, f"no image/png output from the show() call in {where}"
    assert show_cells >= 1, f"{path.name} shows no figure"
    # in a notebook the figures are displayed, not written anywhere
    assert not figures.exists() or not any(figures.rglob("*")), sorted(figures.rglob("*"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_converts_to_a_valid_notebook(path):
    jupytext = pytest.importorskip("jupytext")
    nbformat = pytest.importorskip("nbformat")
    nb = jupytext.read(path)
    nbformat.validate(nb)
    kinds = [c.cell_type for c in nb.cells]
    assert kinds[0] == "markdown" and "Learning goals" in nb.cells[0].source
    assert kinds.count("code") >= 3 and kinds.count("markdown") >= 3
    # the round trip keeps every line of code
    text = jupytext.writes(nb, fmt="py:percent")
    code = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert all(ln in text for ln in code)


def test_every_tutorial_uses_the_package_figure_helper():
    for path in TUTORIALS:
        src = path.read_text()
        assert "def show(" not in src, f"{path.name} defines its own show()"
        if _calls_show(src):
            assert re.search(r"^from nfscratch\.plotting import [^\n]*\bshow\b", src, re.M), path.name


def test_tutorials_readme_lists_every_tutorial():
    readme = (ROOT / "tutorials" / "README.md").read_text()
    for path in TUTORIALS:
        assert path.name in readme, path.name
    assert "jupytext --to notebook" in readme


# ------------------------------------------------------------------------------------------------
# show() run as a plain script
# ------------------------------------------------------------------------------------------------
TWO_FIGURES = """\
from matplotlib.figure import Figure
from nfscratch.plotting import show
for name in ("first", "a second/one"):
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [0, 1])
    show(fig, name)
"""


def _run_script(script, cwd, **env):
    proc = subprocess.run([sys.executable, str(script)], cwd=cwd, env=_env(**env),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_show_in_a_script_saves_numbered_files_in_a_fresh_run_folder(tmp_path):
    script = tmp_path / "my_tutorial.py"
    script.write_text(TWO_FIGURES)
    out = _run_script(script, tmp_path)
    run1 = tmp_path / "nfscratch_out" / "tutorials" / "my_tutorial" / "run-001"
    assert sorted(p.name for p in run1.iterdir()) == ["01_first.png", "02_a_second_one.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in run1.iterdir())
    for p in run1.iterdir():                 # every path is printed
        assert str(p.relative_to(tmp_path)) in out

    first = (run1 / "01_first.png").read_bytes()
    _run_script(script, tmp_path)            # a second run: a new folder, the first untouched
    run2 = run1.parent / "run-002"
    assert sorted(p.name for p in run2.iterdir()) == ["01_first.png", "02_a_second_one.png"]
    assert (run1 / "01_first.png").read_bytes() == first


def test_show_in_a_script_honours_the_folder_and_the_opt_out(tmp_path):
    script = tmp_path / "my_tutorial.py"
    script.write_text(TWO_FIGURES)
    chosen = tmp_path / "elsewhere"
    _run_script(script, tmp_path, NFSCRATCH_FIGURES=str(chosen))
    assert len(list((chosen / "my_tutorial" / "run-001").glob("*.png"))) == 2
    out = _run_script(script, tmp_path, NFSCRATCH_FIGURES="off")
    assert "saved" not in out
    assert not (tmp_path / "nfscratch_out").exists()
    assert len(list(chosen.rglob("*.png"))) == 2


def test_show_refuses_what_is_not_a_figure():
    from nfscratch.plotting import show
    with pytest.raises(TypeError, match="fig: expected a matplotlib Figure"):
        show([1, 2], "x")
    from matplotlib.figure import Figure
    with pytest.raises(ValueError, match="name"):
        show(Figure(), "  ")
