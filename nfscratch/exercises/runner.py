r"""``check_file``: grade a student's exercise file safely, and print the report.

The student's code runs in a child process (:mod:`nfscratch.exercises.worker`), one function
at a time, each with a time limit. When a function runs past it (an infinite loop) or the child
dies, that function is marked FAIL with the reason, the child is replaced, and grading goes on
with the next function. This process never imports the student's file.

Exit codes: 0 when every function passes, 1 when some fail (or the file cannot be imported),
2 for a usage error (no such file, not a Python file, unknown exercise).
"""
import ast
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .._validate import check_positive_float
from .catalogue import EXERCISES, find_exercise
from .grader import FD_TOL, GRAD_TOL, JAC_TOL, SCALAR_TOL, VALUE_TOL

__all__ = ["check_file", "CheckReport", "DEFAULT_TIMEOUT", "exercise_of", "UsageError"]

#: seconds one function may take (its whole grading: forward, backward, finite differences)
DEFAULT_TIMEOUT = 30.0
#: seconds a fresh child may take to import numpy and nfscratch, before the student's file
STARTUP_TIMEOUT = 60.0


_EXERCISE_LINE = re.compile(r"""^EXERCISE\s*=\s*["']([^"']+)["']""", re.MULTILINE)
#: seconds a child that closed its channel gets to exit before its process group is killed
EXIT_GRACE = 2.0


class UsageError(ValueError):
    """A bad invocation (exit code 2): no such file, unknown exercise."""


class CheckReport:
    """The outcome of :func:`check_file`: ``results`` (one dict per function), ``exit_code``, and
    ``text`` (the printed report)."""

    def __init__(self, path, exercise, results, error=None):
        self.path = Path(path)
        self.exercise = exercise
        self.results = results
        self.error = error          # the file could not be imported: why

    @property
    def passed(self):
        return self.error is None and bool(self.results) and all(
            r["status"] == "PASS" for r in self.results)

    @property
    def exit_code(self):
        return 0 if self.passed else 1

    def result(self, name):
        for r in self.results:
            if r["function"] == name:
                return r
        raise KeyError(name)

    @property
    def text(self):
        return format_report(self)

    def __str__(self):
        return self.text


# ------------------------------------------------------------------------------------------------
def exercise_of(path):
    """The exercise id of a file: its ``EXERCISE = "..."`` line (read without running the file,
    and found even when the file has a syntax error), else its file name. Returns None when
    neither says."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):     # ValueError: null bytes in the source
        tree = None
    if tree is not None:
        declared = [node.value.value for node in tree.body
                    if isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "EXERCISE"
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)]
    else:   # the worker reports the syntax error; here we only need to know which exercise
        declared = _EXERCISE_LINE.findall(text)
    for name in declared:
        ex = find_exercise(name)
        if ex is not None:
            return ex.id
    ex = find_exercise(Path(path).stem)
    return ex.id if ex is not None else None


def _syntax_error(path):
    """``" (it has a syntax error at line N: ...)"`` when ``path`` does not parse, else ``""``."""
    try:
        ast.parse(Path(path).read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        return (f" (it also has a syntax error at line {line}: {exc.msg})" if line else
                f" (it is not valid Python source: {getattr(exc, 'msg', exc)})")
    return ""


def check_timeout(timeout):
    """Raise :class:`UsageError` unless ``timeout`` is a finite number of seconds > 0."""
    try:
        check_positive_float(timeout, "timeout", what="a finite number of seconds > 0 (e.g. 30)")
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{exc} A grader must stop an endless loop, so it cannot be "
                         "infinite.") from None


def _child_env():
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])      # so that -m nfscratch... always resolves
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"                                      # tiny arrays: threads only add noise
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["NFSCRATCH_BACKEND"] = "numpy"     # the references are the readable NumPy functions
    env.pop("PYTHONSTARTUP", None)
    return env


class _Child:
    """One worker process (the leader of its own process group) and a line reader with
    timeouts over its message channel."""

    def __init__(self, path, exercise_id, names):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nfscratch.exercises.worker", str(Path(path).resolve()),
             exercise_id, *names],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr,
            env=_child_env(), cwd=str(Path(path).resolve().parent),
            start_new_session=True)       # its own process group: close() kills what it spawned
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def read(self, timeout):
        """The next message (a dict), ``"timeout"`` or ``"eof"``. Lines that are not messages
        are skipped: only the worker writes to this channel, but nothing else may derail it."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not self.sel.select(left):
                    return "timeout"
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return "eof"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and "event" in msg:
                return msg

    def exit_code(self):
        """The child's exit code once it closed its channel; None if it is still running after
        ``EXIT_GRACE`` seconds (it closed or redirected the channel and kept going)."""
        try:
            return self.proc.wait(timeout=EXIT_GRACE)
        except subprocess.TimeoutExpired:
            return None

    def stderr_tail(self):
        try:
            self.stderr.seek(0)
            return self.stderr.read()[-1500:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def close(self):
        """Kill the whole process group (the worker and anything the student's code started)."""
        try:
            if hasattr(os, "killpg"):
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:                                    # no process groups (Windows)
                self.proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.sel.close()
        self.proc.stdout.close()
        self.stderr.close()


def _fail(name, exercise, diagnosis):
    spec = exercise.spec(name)
    return {"function": name, "status": "FAIL", "kind": spec.kind, "summary": spec.summary,
            "depends_on": list(spec.depends_on), "notes": [], "printed": "",
            "rows": [{"check": name, "fd_error": None, "ref_error": None, "threshold": "",
                      "status": "FAIL", "kind": "rel", "diagnosis": diagnosis}]}


def check_file(path, exercise=None, *, timeout=DEFAULT_TIMEOUT, functions=None, verbose=True,
               out=None):
    """Grade the exercise functions in ``path``; return a :class:`CheckReport`.

    Parameters
    ----------
    path : str or Path
        The student's ``.py`` file.
    exercise : str, optional
        Exercise id; default: read from the file (``EXERCISE = "..."``) or its name.
    timeout : float
        Seconds allowed for grading one function.
    functions : list of str, optional
        Grade only these functions.
    verbose : bool
        Print the report to ``out`` (default ``sys.stdout``).

    Raises
    ------
    UsageError
        No such file, not a ``.py`` file, or an exercise that cannot be determined.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"FILE: no such file: {path}")
    if path.suffix != ".py":
        raise UsageError(f"FILE: expected a Python file (.py), got {path.name}")
    check_timeout(timeout)
    ex_id = exercise or exercise_of(path)
    ex = find_exercise(ex_id) if ex_id else None
    if ex is None:
        known = ", ".join(f"{e.id} ({e.filename})" for e in EXERCISES.values())
        raise UsageError(f"cannot tell which exercise {path.name} is (no EXERCISE = \"...\" line "
                         f"and an unknown file name){_syntax_error(path)}; pass --exercise, one "
                         f"of: {known}")
    names = [s.name for s in ex.functions]
    if functions:
        unknown = [f for f in functions if f not in names]
        if unknown:
            raise UsageError(f"function: {unknown} not in exercise {ex.id} ({names})")
        names = [n for n in names if n in functions]
    results, error = {}, None
    remaining = list(names)
    while remaining and error is None:
        child = _Child(path, ex.id, remaining)
        try:
            error = _run_child(child, ex, remaining, results, timeout)
        finally:
            child.close()
    report = CheckReport(path, ex, [results[n] for n in names if n in results], error)
    if verbose:
        print(report.text, file=out or sys.stdout, flush=True)
    return report


def _run_child(child, ex, remaining, results, timeout):
    """Drive one child until it finishes, hangs or dies. Returns an import error or None."""
    msg = child.read(STARTUP_TIMEOUT)
    if not isinstance(msg, dict) or msg.get("event") != "ready":
        tail = child.stderr_tail()
        raise RuntimeError("the grading process did not start"
                           + (f": {tail.splitlines()[-1]}" if tail else f" ({msg})"))
    msg = child.read(timeout)
    if msg == "timeout":
        return (f"importing your file did not finish within {timeout:g} s: is there an infinite "
                "loop (or a long computation) at the top level? Put test code under "
                "`if __name__ == \"__main__\":`.")
    if msg == "eof":
        return ("the grading process " + _eof_why(child) + " while importing your file: does it "
                "call os._exit(), close or redirect file descriptors, or crash the interpreter?")
    if msg.get("event") == "import_error":
        return str(msg.get("error"))
    current = None
    while remaining:
        msg = child.read(timeout if current is not None else STARTUP_TIMEOUT)
        if msg in ("timeout", "eof"):
            name = current or remaining[0]
            if msg == "timeout":
                why = (f"timed out: grading {name} took longer than {timeout:g} s -- an infinite "
                       "loop? (a `while` whose condition never changes, a loop that never "
                       "advances its index)")
            else:
                why = (f"the grading process {_eof_why(child)} while running {name}: your code "
                       "exited, crashed the interpreter (os._exit, a segfault?) or closed or "
                       "redirected the process's output (os.dup2, os.close)")
            results[name] = _fail(name, ex, why)
            remaining.remove(name)
            return None                              # the caller starts a fresh child
        event, name = msg.get("event"), msg.get("function")
        if event == "start" and name in remaining:
            current = name
        elif event == "result" and name in remaining and isinstance(msg.get("result"), dict):
            results[name] = msg["result"]
            remaining.remove(name)
            current = None
        elif event == "done":
            break
    return None


def _eof_why(child):
    """What happened to a child whose channel closed: it died (with which code), or it closed
    the channel and kept running (it is killed when the caller closes it)."""
    code = child.exit_code()
    return "stopped talking (it closed its output and kept running; it was killed)" \
        if code is None else f"died (exit code {code})"


# ------------------------------------------------------------------------------------------------
def _fmt_err(x, kind):
    if x is None:
        return "-"
    s = f"{x:.1e}" if x == x else "nan"
    return s + ("*" if kind == "abs" else "")


def format_report(report):
    ex = report.exercise
    lines = [f"nfscratch exercises check {report.path.name}  --  exercise {ex.id!r}: {ex.title}",
             f"float64, fixed seeds. A gradient PASSes when its max relative error is <= "
             f"{GRAD_TOL:.0e} against nfscratch's",
             f"reference and <= {FD_TOL:.0e} against central differences (eps = 1e-6) of your "
             f"own forward pass. Values: <= {VALUE_TOL:.0e}",
             f"relative; Jacobians: <= {JAC_TOL:.0e} relative; numbers: <= {SCALAR_TOL:.0e} "
             f"absolute. * = an absolute error (for a log_det,",
             "the vs-finite-diff column compares with slogdet of the finite-difference Jacobian).",
             ""]
    if report.error is not None:
        lines += [f"FAIL  {report.error}", "", "0 of "
                  f"{len(ex.functions)} functions checked: fix the file so that it imports."]
        return "\n".join(lines)
    status = {r["function"]: r["status"] for r in report.results}
    for r in report.results:
        head = f"{r['function']}  [{r['status']}]"
        if r.get("summary"):
            head += f"  {r['summary']}"
        lines.append(head)
        cells = [("check", "vs reference", "vs finite diff", "status", "diagnosis")]
        previous = None
        for row in r["rows"]:
            diag = row["diagnosis"]
            shown = "(same as above)" if diag and diag == previous else diag
            previous = diag
            cells.append((row["check"], _fmt_err(row["ref_error"], row["kind"]),
                          _fmt_err(row["fd_error"], "abs" if row["kind"] == "value" else row["kind"]),
                          row["status"], shown))
        widths = [max(len(c[i]) for c in cells) for i in range(4)]
        for k, c in enumerate(cells):
            lines.append("  " + "  ".join([c[0].ljust(widths[0]), c[1].rjust(widths[1]),
                                           c[2].rjust(widths[2]), c[3].ljust(widths[3]),
                                           c[4]]).rstrip())
            if k == 0:
                lines.append("  " + "  ".join("-" * w for w in widths) + "  ---------")
        for dep in r.get("depends_on", []):
            if r["status"] == "FAIL" and status.get(dep) == "FAIL":
                lines.append(f"  note: {r['function']} uses {dep}, which fails too: fix {dep} first.")
        for note in r.get("notes", []):
            lines.append(f"  note: {note}")
        printed = (r.get("printed") or "").strip()
        if printed:
            shown = printed.splitlines()[-5:]
            lines.append("  your code printed (last lines):")
            lines += [f"    | {s}" for s in shown]
        lines.append("")
    n_pass = sum(r["status"] == "PASS" for r in report.results)
    n = len(report.results)
    verdict = "PASSED" if report.passed else "FAILED"
    lines.append(f"{verdict}: {n_pass} of {n} functions pass"
                 + ("" if report.passed else
                    f" ({', '.join(r['function'] for r in report.results if r['status'] != 'PASS')} "
                    "to fix)"))
    return "\n".join(lines)
