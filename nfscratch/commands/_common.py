"""Helpers shared by the command modules."""
from pathlib import Path


def fresh_run_dir(out, prefix):
    """Create and return ``out/<prefix>-NNN`` with the next free number, so that a run never
    overwrites the files of an earlier one."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        run = out / f"{prefix}-{k:03d}"
        try:
            run.mkdir()
            return run
        except FileExistsError:
            k += 1
