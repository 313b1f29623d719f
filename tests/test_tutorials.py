"""Every tutorial runs in quick mode as a plain script, and converts to a valid notebook."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 7, [p.name for p in TUTORIALS]


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_quick_mode(path, tmp_path):
    env = dict(os.environ, NFSCRATCH_QUICK="1", MPLBACKEND="Agg",
               NFSCRATCH_TUTORIAL_OUT=str(tmp_path / "figures"))
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    figures = list((tmp_path / "figures").glob("*.png"))
    assert figures, f"{path.name} saved no figure to NFSCRATCH_TUTORIAL_OUT"


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


def test_tutorials_readme_lists_every_tutorial():
    readme = (ROOT / "tutorials" / "README.md").read_text()
    for path in TUTORIALS:
        assert path.name in readme, path.name
    assert "jupytext --to notebook" in readme
