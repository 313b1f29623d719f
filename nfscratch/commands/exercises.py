"""``nfscratch exercises``: hand out the student versions, grade a student's file.

* ``nfscratch exercises make-student OUT_DIR [--overwrite] [--source DIR]``
* ``nfscratch exercises check FILE [FILE ...] [--exercise ID] [--timeout S] [--function NAME]``
* ``nfscratch exercises list``

``check`` exits 0 when every function of every file passes, 1 when some fail, 2 on a usage error
(a missing file, an unknown exercise), so it can drive an autograder.
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
                    help="directory of the solution files (default: tutorials/exercises of the "
                         "nfscratch source tree)")
    mk.set_defaults(func=run_make_student)

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

    ls = ex_sub.add_parser("list", help="list the exercises and their functions")
    ls.set_defaults(func=run_list)


def run_make_student(args):
    from ..exercises import MarkerError, make_student
    try:
        written = make_student(args.out_dir, source_dir=args.source, overwrite=args.overwrite)
    except FileNotFoundError as exc:
        print(f"nfscratch exercises make-student: {exc}", file=sys.stderr)
        return 2
    except (FileExistsError, MarkerError) as exc:
        print(f"nfscratch exercises make-student: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} files written; students check their work with "
          f"`nfscratch exercises check FILE`.")
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
        except UsageError as exc:
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
