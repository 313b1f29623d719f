"""gradcheck's verdicts: rows, results, and the PASS / WARN / FAIL / SKIP tables they print.

A check produces one :class:`GradcheckRow` per gradient (or per log-det, round trip, shape
check) and collects them in a :class:`GradcheckResult`, whose ``str`` is the table a student
reads. :func:`judge` turns an error into a status with the thresholds ``warn`` and ``fail``.
"""
from dataclasses import dataclass, field

import numpy as np

from .numerics import EPS

__all__ = ["WARN", "FAIL", "GradcheckRow", "GradcheckResult", "judge", "skip_rows", "summary"]

WARN = 1e-7         # error above this: WARN
FAIL = 1e-4         # error above this: FAIL
STATUSES = ("PASS", "WARN", "FAIL", "SKIP")


def judge(err, warn, fail):
    """"PASS", "WARN" or "FAIL" for an error; a missing or non-finite error FAILs."""
    if err is None or not np.isfinite(err) or err > fail:
        return "FAIL"
    return "WARN" if err > warn else "PASS"


@dataclass
class GradcheckRow:
    """One line of the table.

    ``error`` is a relative error (``kind="rel"``, gradient rows) or an absolute one
    (``kind="abs"``: log-det, round trip, log-det sum); None for shape and SKIP rows.
    """
    name: str
    direction: str
    error: float | None
    status: str                 # "PASS", "WARN", "FAIL" or "SKIP"
    detail: str = ""
    kind: str = "rel"


def skip_rows(direction, message, names):
    """One SKIP row per name, all with the same message."""
    return [GradcheckRow(nm, direction, None, "SKIP", message) for nm in names]


@dataclass
class GradcheckResult:
    """The outcome of a check: rows plus the settings they were judged with.

    ``passed`` is True when no row FAILs (WARN and SKIP rows do not fail a check).
    ``str(result)`` is the table.
    """
    name: str
    rows: list = field(default_factory=list)
    eps: float = EPS
    warn: float = WARN
    fail: float = FAIL
    n: int | None = None

    @property
    def passed(self):
        return not any(r.status == "FAIL" for r in self.rows)

    @property
    def status(self):
        """Overall status: FAIL if any row fails, else WARN if any warns, else PASS."""
        statuses = {r.status for r in self.rows}
        return "FAIL" if "FAIL" in statuses else "WARN" if "WARN" in statuses else "PASS"

    @property
    def max_error(self):
        """Largest gradient (relative) error in the table, 0.0 if there is none."""
        errs = [r.error for r in self.rows if r.kind == "rel" and r.error is not None]
        return float(np.max(errs, initial=0.0))      # NaN if any gradient row is NaN

    def row(self, name, direction=None):
        """The row called ``name`` (in ``direction``, if given); KeyError if there is none."""
        for r in self.rows:
            if r.name == name and (direction is None or r.direction == direction):
                return r
        have = ", ".join(f"{r.name}/{r.direction}" for r in self.rows)
        raise KeyError(f"no row {name!r}{'' if direction is None else f' in direction {direction!r}'}; "
                       f"rows are: {have}")

    def counts(self):
        """Number of rows of each status, ``{"PASS": ., "WARN": ., "FAIL": ., "SKIP": .}``."""
        return {s: sum(r.status == s for r in self.rows) for s in STATUSES}

    def table(self):
        """The printed table: a header with the settings, one line per row, a verdict."""
        batch = "" if self.n is None else f", N={self.n}"
        lines = [f"gradcheck {self.name}: float64, eps={self.eps:.0e}{batch}; "
                 f"WARN > {self.warn:.0e}, FAIL > {self.fail:.0e}"]
        cells = [("check", "direction", "max rel error", "status", "detail")]
        for r in self.rows:
            if r.error is None:
                err = "-"
            else:
                err = f"{r.error:.1e}" + ("*" if r.kind == "abs" else " ")
            cells.append((r.name, r.direction, err, r.status, r.detail))
        widths = [max(len(c[i]) for c in cells) for i in range(4)]
        for k, c in enumerate(cells):
            lines.append("  ".join([c[0].ljust(widths[0]), c[1].ljust(widths[1]),
                                    c[2].rjust(widths[2]), c[3].ljust(widths[3]), c[4]]).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths) + "  ------")
        if any(r.kind == "abs" and r.error is not None for r in self.rows):
            lines.append("* absolute error: log_det rows compare log|det J| (a relative error of "
                         "|det J|); round trip in units of z.")
        c = self.counts()
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(f"{verdict}: {c['PASS']} PASS, {c['WARN']} WARN, {c['FAIL']} FAIL, {c['SKIP']} SKIP")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def summary(results):
    """The tables of the results that did not pass, then one line per result.

    ``results`` is a dict of name -> :class:`GradcheckResult`, as :func:`check_all` returns.
    """
    lines = []
    for r in results.values():
        if r.status != "PASS":
            lines += [r.table(), ""]
    w = max([len(nm) for nm in results] + [5])
    lines.append(f"{'model'.ljust(w)}  status  max rel error  PASS  WARN  FAIL  SKIP")
    for nm, r in results.items():
        c = r.counts()
        lines.append(f"{nm.ljust(w)}  {r.status:<6}  {r.max_error:13.1e}  {c['PASS']:4d}  "
                     f"{c['WARN']:4d}  {c['FAIL']:4d}  {c['SKIP']:4d}")
    n_fail = sum(not r.passed for r in results.values())
    lines.append(f"{len(results) - n_fail} of {len(results)} passed")
    return "\n".join(lines)
