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
    # every result against its floor: the data's entropy, and 0 for a KL
    assert re.search(r"test NLL -?\d+\.\d+ ± \d+\.\d+ nats \(floor 0\.289, gap -?\d+\.\d+ nats\)", out), out
    assert re.search(r"KL -?\d+\.\d+ ± \d+\.\d+ nats \(ESS \d+%\), floor 0", out), out
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
    assert "already exists" in capsys.readouterr().err and path.read_bytes() == before
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
    (["--dataset", "two_moons", "--lr", "-1"], "--lr: expected a positive finite number"),
    (["--dataset", "two_moons", "--layers", "0"], "--layers: expected a positive integer"),
    (["--dataset", "two_moons", "--seed", "-1"], "--seed: expected a non-negative integer"),
    (["--dataset", "two_moons", "--lr", "inf"], "--lr: expected a positive finite number"),
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


# ----------------------------------------------------------------------------------------------
# no command path ends in a traceback; nothing is overwritten; a diverged flow is never saved
# ----------------------------------------------------------------------------------------------
def _unwritable_dir(tmp_path):
    """A folder where no file can be created, even by root (a read-only file system)."""
    from nfscratch.plotting._common import check_output_file
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    for d in (locked, Path("/proc"), Path("/sys")):
        try:
            check_output_file(d / "probe.npz", probe=True)
        except OSError:
            return d
    pytest.skip("no unwritable folder on this machine (running as root on a writable fs)")


def _bad_cases(tmp_path):
    from nfscratch.plotting import ffmpeg_available
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"keep me")
    (tmp_path / "existing.json").write_bytes(b"keep me")
    (tmp_path / "a_dir.npz").mkdir()
    train = ["train", "--dataset", "two_moons", "--layers", "2", "--hidden", "8", "--steps", "5",
             "--n-data", "256", "--no-progress"]
    plot = ["plot", "warp", "--demo", "moons", "--steps", "1", "--no-progress"]
    return [
        (train + ["-o", str(tmp_path), "--overwrite"], 2, "--output: expected a file name"),
        (train + ["-o", str(tmp_path / "a_dir.npz"), "--overwrite"], 2, "--output: expected a file"),
        (train + ["-o", str(_unwritable_dir(tmp_path) / "m.npz")], 2, "--output: cannot write"),
        (train + ["-o", str(tmp_path / "m.npz"), "--seed", "-1"], 2, "--seed"),
        (train + ["-o", str(tmp_path / "m.npz"), "--steps", "x"], 2, "--steps"),
        (["demo", "--out", str(existing), "--no-progress"], 2, "--out: expected a folder"),
        (["demo", "--seed", "-1"], 2, "--seed"),
        (["bench", "--repeats", "-1"], 2, "--repeats: expected a positive integer"),
        (["bench", "--batch", "0"], 2, "--batch"),
        (["bench", "--json", str(tmp_path / "existing.json")], 2, "--json: "),
        (plot + ["-o", str(existing)], 2, "--out: "),
        (plot + ["-o", str(tmp_path / "w.png"), "--seed", "-1"], 2, "--seed"),
        (plot + ["-o", str(tmp_path / "w.png"), "--ncols", "0"], 2, "--ncols"),
        (plot + ["-o", str(tmp_path / "w.png"), "--style", "poster"], 2, "--style"),
        (plot + ["-o", str(tmp_path / "no" / "w.png")], 2, "does not exist"),
        (["plot", "animate", "--flow", str(tmp_path / "missing.npz"), "-o",
          str(tmp_path / "a.gif")], 2, "missing.npz"),
        (["plot", "animate", "--demo", "moons", "-o", str(tmp_path / "a.png")], 2, ".gif or .mp4"),
        (["plot", "animate", "--demo", "moons", "-o", str(tmp_path / "a.gif"), "--fps", "0"], 2,
         "--fps"),
    ] + ([] if ffmpeg_available() else
         [(["plot", "animate", "--demo", "moons", "-o", str(tmp_path / "a.mp4")], 2, "ffmpeg")])


def test_no_command_ends_in_a_traceback(tmp_path, capsys):
    for argv, code, message in _bad_cases(tmp_path):
        assert main(argv) == code, argv
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, argv
        assert message in err, (argv, err)
        assert len(err.strip().splitlines()[-1]) > 20, argv        # a sentence, not a bare code
    assert (tmp_path / "existing.png").read_bytes() == b"keep me"
    assert (tmp_path / "existing.json").read_bytes() == b"keep me"
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "w.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_real_process_prints_one_line_not_a_traceback(tmp_path):
    for argv in (["train", "--energy", "U1", "--seed", "-1", "-o", str(tmp_path / "m.npz")],
                 ["demo", "--out", str(ROOT / "README.md")]):
        res = subprocess.run([sys.executable, "-m", "nfscratch", *argv], capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert ("--seed" if "--seed" in argv else "--out") in res.stderr


def test_unexpected_errors_are_one_line_with_exit_code_1(monkeypatch, capsys):
    from nfscratch.commands import gradcheck

    def boom(args):
        raise KeyError("something internal")
    monkeypatch.setattr(gradcheck, "run", boom)
    assert main(["gradcheck"]) == 1
    err = capsys.readouterr().err
    assert "failed with KeyError" in err and "NFSCRATCH_DEBUG" in err and "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["--dataset", "two_moons", "--lr", "1e300", "--steps", "20"],      # fit raises TrainingDiverged
    ["--dataset", "two_moons", "--lr", "1e300", "--steps", "1"],       # fit returns; test NLL inf
    ["--energy", "U2", "--lr", "1e300", "--steps", "1"],               # samples overflow
])
def test_diverged_training_exits_nonzero_names_a_layer_and_saves_nothing(tmp_path, capsys, args):
    path = tmp_path / "m.npz"
    code = main(["train", *args, "--layers", "2", "--hidden", "8", "--n-data", "256",
                 "-o", str(path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "training diverged" in err and "Nothing was saved" in err, err
    assert "layer" in err or "not finite" in err or "cannot be evaluated" in err
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_diverged_training_names_the_layer(tmp_path, capsys):
    assert main(["train", "--dataset", "two_moons", "--lr", "1e300", "--steps", "20",
                 "--layers", "2", "--hidden", "8", "--n-data", "256", "-o",
                 str(tmp_path / "m.npz"), "--no-progress"]) == 1
    assert re.search(r"layer \d+ \(\w+", capsys.readouterr().err)


def test_bench_json_is_written_whole_and_only_on_success(tmp_path, monkeypatch, capsys):
    from nfscratch.commands import bench

    def fake_call(argv):
        Path(argv[argv.index("--json") + 1]).write_text('{"ok": 1}')
        return 0 if "--quick" in argv else 3
    monkeypatch.setattr(bench.subprocess, "call", fake_call)
    path = tmp_path / "r.json"
    assert main(["bench", "--json", str(path)]) == 3          # failed run: no file at all
    assert list(tmp_path.iterdir()) == []
    assert main(["bench", "--quick", "--json", str(path)]) == 0
    assert path.read_text() == '{"ok": 1}'
    assert main(["bench", "--quick", "--json", str(path)]) == 2      # exists: refused
    assert main(["bench", "--quick", "--json", str(path), "--overwrite"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_long_commands_show_progress_on_a_terminal(tmp_path, capsys, monkeypatch):
    # a terminal is what turns the bars on by default; --no-progress turns them off
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv = ["plot", "animate", "--demo", "moons", "--steps", "3", "--frames-per-layer", "1",
            "--dpi", "20", "-o", str(tmp_path / "a.gif")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "fit (nll)" in err and "frames of a.gif" in err          # training, then drawing
    assert main(argv[:-1] + [str(tmp_path / "b.gif"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "fit (" not in err and "frames of" not in err
    assert main(["train", "--energy", "U1", "--layers", "2", "--steps", "3",
                 "-o", str(tmp_path / "m.npz")]) == 0
    assert "fit (reverse_kl)" in capsys.readouterr().err
