"""``nfscratch bench``: side-by-side timings of a training step (runs ``benchmarks/run.py``).

The benchmark fixes the number of BLAS/Numba/PyTorch threads through environment variables that
must be set before NumPy is imported, so it runs in a fresh Python process; every flag is passed
through. torch and normflows are optional (``pip install 'nfscratch[bench]'``).

The numbers are checked here, before the subprocess starts, and ``--json`` refuses to replace an
existing file unless ``--overwrite`` is given; the JSON goes to a temporary file that is renamed
only when the benchmark succeeds, so a failed or interrupted run leaves no partial file.
"""
import subprocess
import sys
from pathlib import Path

from ._common import output_file, positive_int

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def register(sub):
    p = sub.add_parser("bench", help="time a planar and a coupling training step on the numba and "
                                     "numpy backends (and PyTorch/normflows when installed)")
    p.add_argument("--quick", action="store_true", help="batches 64 and 512, 3 repeats")
    p.add_argument("--batch", type=positive_int, nargs="+", metavar="N", help="batch sizes")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="threads for every implementation (1)")
    p.add_argument("--repeats", type=positive_int, help="timed blocks per implementation")
    p.add_argument("--only", choices=["planar", "coupling"], help="run one of the two steps")
    p.add_argument("--impl", nargs="+", choices=["numba", "numpy", "torch", "normflows"])
    p.add_argument("--no-cold", action="store_true", help="skip the cold-start measurement")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=run)


def run(args):
    if not SCRIPT.is_file():
        print(f"nfscratch bench: expected the benchmark script at {SCRIPT}, but it is not there "
              "(an installed wheel does not ship benchmarks/). Run it from a source checkout: "
              "python benchmarks/run.py", file=sys.stderr)
        return 2
    argv = [sys.executable, str(SCRIPT), "--threads", str(args.threads)]
    for flag in ("quick", "no_cold"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    for flag in ("repeats", "only"):
        if getattr(args, flag) is not None:
            argv += ["--" + flag, str(getattr(args, flag))]
    if args.batch:
        argv += ["--batch", *map(str, args.batch)]
    if args.impl:
        argv += ["--impl", *args.impl]
    if args.json is None:
        return subprocess.call(argv)
    from ..plotting._common import atomic_output
    path = output_file(args.json, args.overwrite, "--json")
    code = 1
    try:
        with atomic_output(path, overwrite=args.overwrite, name="--json") as tmp:
            code = subprocess.call(argv + ["--json", str(tmp)])
            if code != 0:
                raise _Failed
    except _Failed:
        print(f"nfscratch bench: the benchmark failed (exit code {code}); {path} was not "
              "written.", file=sys.stderr)
        return code
    print(f"saved the results as {path}")
    return 0


class _Failed(Exception):
    """The benchmark subprocess failed: leave no JSON behind."""
