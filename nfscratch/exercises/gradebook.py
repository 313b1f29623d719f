r"""``nfscratch exercises grade``: a folder of submissions into one table for the instructor.

Every ``*.py`` file under the folder (sub-folders too, e.g. one per student) is graded by
:func:`~nfscratch.exercises.runner.check_file`, which runs it in a worker process of its own, so
no two submissions ever share a process (one cannot see or break another). The table has one
row per file: the file (relative to the folder), its exercise, PASS/FAIL per function, the
number passed and a score in percent, and the first problem found. It is written as CSV or as a
Markdown table (by the suffix of the output file), or printed as Markdown.
"""
import csv
import io
from pathlib import Path

from .catalogue import EXERCISES
from .files import check_writable, write_new_files
from .runner import DEFAULT_TIMEOUT, UsageError, check_file, check_timeout, exercise_of

__all__ = ["grade_folder", "submissions", "REPORT_FORMATS"]

REPORT_FORMATS = {".csv": "csv", ".md": "markdown"}


def submissions(folder):
    """The ``*.py`` files under ``folder``, sorted, hidden files and folders left out."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*.py") if p.is_file()
                  and not any(part.startswith((".", "__")) for part in p.relative_to(folder).parts))


def grade_folder(folder, output=None, *, overwrite=False, timeout=DEFAULT_TIMEOUT,
                 progress=None):
    """Grade every submission in ``folder``; return ``(rows, columns, text)``.

    Parameters
    ----------
    folder : str or Path
        The submissions (``*.py``, sub-folders included).
    output : str or Path, optional
        ``.csv`` or ``.md`` file to write; refused if it exists, unless ``overwrite``. Without
        it the Markdown table is only returned.
    timeout : float
        Seconds per function, as for ``check``.
    progress : file, optional
        Where a progress line per submission goes (the command passes ``sys.stderr``).

    Raises
    ------
    UsageError
        No such folder, no submissions in it, an output that is not ``.csv``/``.md``, an output
        that exists without ``overwrite``, a bad timeout. Checked before any grading starts.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"DIR: no such folder: {folder}")
    check_timeout(timeout)
    fmt = "markdown"
    if output is not None:
        output = Path(output)
        fmt = REPORT_FORMATS.get(output.suffix.lower())
        if fmt is None:
            raise UsageError(f"output: expected a .csv or .md file name, got {output.name}")
        if output.is_dir():
            raise UsageError(f"output: {output} is a directory; give a file name ending in "
                             ".csv or .md")
        if output.exists() and not overwrite:
            raise UsageError(f"output: refusing to overwrite {output}; pass --overwrite to "
                             "replace it.")
        try:
            check_writable(output)
        except OSError as exc:
            raise UsageError(f"output: {exc}; choose another place for the report.") from None
    files = submissions(folder)
    if not files:
        raise UsageError(f"DIR: no submissions (*.py files) in {folder}")
    rows = []
    for k, path in enumerate(files, 1):
        row = _grade_one(path, folder, timeout)
        rows.append(row)
        if progress is not None:
            print(f"[{k}/{len(files)}] {row['file']}: {row['exercise']} "
                  f"{row['passed']}/{row['total']}", file=progress, flush=True)
    columns = _columns(rows)
    text = (_csv if fmt == "csv" else _markdown)(rows, columns)
    if output is not None:
        try:
            write_new_files(output.parent, {output.name: text}, overwrite=overwrite)
        except OSError as exc:            # FileExistsError too: it appeared meanwhile
            raise UsageError(f"output: {exc}") from None
    return rows, columns, text


def _grade_one(path, folder, timeout):
    row = {"file": path.relative_to(folder).as_posix(), "exercise": "?", "passed": 0, "total": 0,
           "score": "0", "problem": "", "functions": {}}
    ex_id = exercise_of(path)
    if ex_id is None:
        row["problem"] = "cannot tell which exercise this is (no EXERCISE line, unknown file name)"
        return row
    row["exercise"] = ex_id
    row["total"] = len(EXERCISES[ex_id].functions)
    try:
        report = check_file(path, ex_id, timeout=timeout, verbose=False)
    except (UsageError, RuntimeError, OSError) as exc:
        row["problem"] = f"not graded: {exc}"
        return row
    if report.error is not None:
        row["problem"] = report.error
        row["functions"] = {s.name: "FAIL" for s in report.exercise.functions}
        return row
    row["functions"] = {r["function"]: r["status"] for r in report.results}
    row["passed"] = sum(s == "PASS" for s in row["functions"].values())
    row["score"] = f"{100.0 * row['passed'] / row['total']:.0f}"
    for r in report.results:
        bad = [x for x in r["rows"] if x["status"] != "PASS"]
        if bad:
            row["problem"] = f"{r['function']}: {bad[0]['check']}: {bad[0]['diagnosis']}"
            break
    return row


def _columns(rows):
    """The function columns, in catalogue order, of the exercises that occur."""
    seen = {row["exercise"] for row in rows}
    return [s.name for ex in EXERCISES.values() if ex.id in seen for s in ex.functions]


def _cells(row, columns):
    return ([row["file"], row["exercise"]] + [row["functions"].get(c, "") for c in columns]
            + [str(row["passed"]), str(row["total"]), row["score"], row["problem"]])


def _header(columns):
    return ["file", "exercise"] + columns + ["passed", "total", "score %", "first problem"]


def _csv(rows, columns):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_header(columns))
    writer.writerows(_cells(row, columns) for row in rows)
    return buf.getvalue()


def _markdown(rows, columns):
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
    header = _header(columns)
    out = [line(header), "|" + "|".join("---" for _ in header) + "|"]
    out += [line(_cells(row, columns)) for row in rows]
    return "\n".join(out) + "\n"
