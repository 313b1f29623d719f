"""``nfscratch exercises``: hand out the student versions, give hints, grade.

* ``nfscratch exercises make-student OUT_DIR [--overwrite] [--source DIR] [--with-hints]``
* ``nfscratch exercises hint FILE [--level K] [--function NAME]``
* ``nfscratch exercises check FILE [FILE ...] [--exercise ID] [--timeout S] [--function NAME]``
* ``nfscratch exercises grade DIR [-o REPORT.csv|REPORT.md] [--overwrite] [--timeout S]``
* ``nfscratch exercises list``

``check`` exits 0 when every function of every file passes, 1 when some fail, 2 on a usage error
(a missing file, an unknown exercise, a bad timeout), so it can drive an autograder. ``grade``
exits 0 once its table is written, whatever the students scored.
"""
import sys


def register(sub):
    p = sub.add_parser("exercises", help="course exercises: write the student versions, grade a "
                                         "student's file")
    ex_sub = p.add_subparsers(dest="exercises_command", metavar="ACTION")
    ex_sub.required = True

    mk = ex_sub.add_parser("make-student", help="write the student versions of the exercises "
                                                "(solutions replaced by NotImplementedError)")
    mk.add_argument("out_dir", metavar="OUT_DIR", help="directory to write into (created if missing)")
    mk.add_argument("--overwrite", action="store_true",
                    help="replace files that already exist (default: refuse, write nothing)")
    mk.add_argument("--source", metavar="DIR", default=None,
                    help="directory of the solution files (default: the ones shipped with "
                         "nfscratch)")
    mk.add_argument("--with-hints", action="store_true",
                    help="write each exercise's hints into the hand-out as comments (default: "
                         "none; students ask `nfscratch exercises hint FILE`)")
    mk.set_defaults(func=run_make_student)

    hn = ex_sub.add_parser("hint", help="show the hints of an exercise one level at a time "
                                        "(1 = a nudge, 2 = the equation, 3 = the shapes)")
    hn.add_argument("file", metavar="FILE", help="your exercise file (the hand-out you are "
                                                 "working on)")
    hn.add_argument("--level", type=int, default=1, metavar="K",
                    help="show hints 1..K (default 1)")
    hn.add_argument("--function", action="append", default=None, metavar="NAME",
                    help="only this function (repeatable; default: the functions that still "
                         "raise NotImplementedError)")
    hn.add_argument("--exercise", default=None,
                    help="exercise id, when the file has no EXERCISE = \"...\" line")
    hn.set_defaults(func=run_hint)

    ck = ex_sub.add_parser("check", help="grade a student's exercise file: a table per function, "
                                         "exit code 0 = all pass, 1 = some fail, 2 = usage error")
    ck.add_argument("files", nargs="+", metavar="FILE", help="the student's .py file(s)")
    ck.add_argument("--exercise", default=None,
                    help="exercise id, when the file has no EXERCISE = \"...\" line")
    ck.add_argument("--timeout", type=float, default=None,
                    help="seconds allowed per function (default 30)")
    ck.add_argument("--function", action="append", default=None, metavar="NAME",
                    help="grade only this function (repeatable)")
    ck.set_defaults(func=run_check)

    gr = ex_sub.add_parser("grade", help="grade a folder of submissions into one table (CSV or "
                                         "Markdown), each submission in its own process")
    gr.add_argument("folder", metavar="DIR", help="folder of submissions (*.py, sub-folders too)")
    gr.add_argument("-o", "--output", default=None, metavar="REPORT",
                    help="write the table to REPORT.csv or REPORT.md (default: print Markdown)")
    gr.add_argument("--overwrite", action="store_true", help="replace an existing REPORT")
    gr.add_argument("--timeout", type=float, default=None,
                    help="seconds allowed per function (default 30)")
    gr.set_defaults(func=run_grade)

    ls = ex_sub.add_parser("list", help="list the exercises and their functions")
    ls.set_defaults(func=run_list)


def run_make_student(args):
    from ..exercises import MarkerError, make_student
    try:
        written = make_student(args.out_dir, source_dir=args.source, overwrite=args.overwrite,
                               with_hints=args.with_hints)
    except FileNotFoundError as exc:
        print(f"nfscratch exercises make-student: {exc}", file=sys.stderr)
        return 2
    except (FileExistsError, MarkerError, OSError) as exc:
        print(f"nfscratch exercises make-student: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} files written; students check their work with "
          f"`nfscratch exercises check FILE` and ask for hints with "
          f"`nfscratch exercises hint FILE`.")
    return 0


def run_hint(args):
    from ..exercises import hint_text
    try:
        print(hint_text(args.file, level=args.level, functions=args.function,
                        exercise=args.exercise))
    except (TypeError, ValueError, KeyError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"nfscratch exercises hint: {msg}", file=sys.stderr)
        return 2
    return 0


def run_grade(args):
    from ..exercises import DEFAULT_TIMEOUT, UsageError
    from ..exercises.gradebook import grade_folder
    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    try:
        rows, _, text = grade_folder(args.folder, args.output, overwrite=args.overwrite,
                                     timeout=timeout, progress=sys.stderr)
    except UsageError as exc:
        print(f"nfscratch exercises grade: {exc}", file=sys.stderr)
        return 2
    if args.output is None:
        print(text, end="")
    else:
        print(f"wrote {args.output}: {len(rows)} submission(s)")
    return 0


def run_check(args):
    from ..exercises import DEFAULT_TIMEOUT, UsageError, check_file
    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    code = 0
    for k, path in enumerate(args.files):
        if k:
            print()
        try:
            report = check_file(path, exercise=args.exercise, timeout=timeout,
                                functions=args.function)
        except (UsageError, RuntimeError) as exc:
            print(f"nfscratch exercises check: {exc}", file=sys.stderr)
            return 2
        code = max(code, report.exit_code)
    return code


def run_list(args):
    from ..exercises import EXERCISES
    for ex in EXERCISES.values():
        print(f"{ex.id:18s} {ex.filename:26s} {ex.title}")
        for spec in ex.functions:
            print(f"    {spec.name:34s} {spec.summary}")
    return 0
