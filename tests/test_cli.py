"""The command line: demo (quick), train, gradcheck, and the README/CI agreement."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nfscratch import io
from nfscratch.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_demo_quick_writes_figures_and_flows(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"test NLL -?\d+\.\d+ nats", out) and re.search(r"KL\(q \|\| p\) \d+\.\d+ nats", out)
    run = tmp_path / "demo-001"
    for name in ("moons_density.png", "u1_density.png", "moons_realnvp.npz", "u1_planar.npz"):
        assert (run / name).stat().st_size > 1000, name
    assert io.load(run / "u1_planar.npz").dim == 2


def test_runs_never_overwrite_earlier_runs(tmp_path):
    from nfscratch.commands._common import fresh_run_dir
    first = fresh_run_dir(tmp_path, "demo")
    (first / "keep.png").write_bytes(b"old")
    assert fresh_run_dir(tmp_path, "demo") == tmp_path / "demo-002"
    assert (first / "keep.png").read_bytes() == b"old"


def test_train_saves_and_refuses_to_overwrite(tmp_path, capsys):
    path = tmp_path / "m.npz"
    args = ["train", "--dataset", "two_moons", "--layers", "2", "--hidden", "8", "--steps", "20",
            "--n-data", "256", "--output", str(path), "--no-progress"]
    assert main(args) == 0
    flow = io.load(path)
    assert len(flow) == 2 and np.all(np.isfinite(flow.log_prob(np.zeros((1, 2)))))
    before = path.read_bytes()
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().out and path.read_bytes() == before
    assert main(["train", "--energy", "U2", "--layers", "2", "--steps", "10",
                 "--output", str(tmp_path / "u2"), "--no-progress"]) == 0
    assert (tmp_path / "u2.npz").exists()


def test_gradcheck_command_passes(capsys):
    assert main(["gradcheck", "--dim", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "every transform PASSED in both directions" in out
    assert out.count("PASS") >= 7


def test_python_dash_m_and_help():
    res = subprocess.run([sys.executable, "-m", "nfscratch", "--help"], capture_output=True,
                         text=True, check=True)
    assert "backward' always means backpropagation" in res.stdout
    for command in ("demo", "train", "gradcheck"):
        assert command in res.stdout


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert 'pip install -e . && nfscratch demo' in blocks
    test_command = 'pip install -e ".[test]" && python -m pytest'
    assert test_command in blocks
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


@pytest.mark.parametrize("args, message", [
    (["--dataset", "foo"], "unknown data set 'foo'"),
    (["--energy", "U9"], "unknown energy 'U9'"),
    (["--dataset", "two_moons", "--steps", "0"], "steps: expected a positive integer"),
    (["--dataset", "two_moons", "--lr", "-1"], "--lr: expected a positive learning rate"),
    (["--dataset", "two_moons", "--layers", "0"], "n_layers: expected a positive integer"),
])
def test_train_reports_bad_arguments_in_one_line(tmp_path, capsys, args, message):
    assert main(["train", *args, "-o", str(tmp_path / "m.npz"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "m.npz").exists()


def test_train_checks_the_output_folder_before_training(tmp_path, capsys):
    assert main(["train", "--dataset", "two_moons", "-o", str(tmp_path / "no" / "m.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bench_command_checks_agreement_and_prints_the_table():
    # correctness of the benchmark harness only (the loss check and the table), never timings
    res = subprocess.run([sys.executable, "-m", "nfscratch", "bench", "--quick", "--batch", "64",
                          "--impl", "numba", "numpy", "--no-cold"], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    for kind in ("planar", "coupling"):
        assert f"{kind}: losses agree on the same inputs" in res.stdout
        assert f"{kind} step, batch 64" in res.stdout
    assert re.search(r"numba\s+\d+\.\d+\s+\d+\.\d+", res.stdout)
    assert re.search(r"numpy\s+\d+\.\d+\s+\d+\.\d+", res.stdout)
