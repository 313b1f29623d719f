"""The child process that imports a student's file and grades its functions.

Run as ``python -m nfscratch.exercises.worker FILE EXERCISE_ID FUNCTION...`` by
:mod:`nfscratch.exercises.runner`, never by hand. It talks to the parent with one JSON object per
line on its original standard output::

    {"event": "ready"}                       numpy and nfscratch imported
    {"event": "imported"}                    the student's file executed without error
    {"event": "import_error", "error": ...}  it did not (the message says why and where)
    {"event": "start", "function": name}     grading of one function begins
    {"event": "result", "function": name, "result": {...}}
    {"event": "done"}

The channel is a private, non-inheritable duplicate of the original standard output; once
nfscratch is imported, file descriptors 1 and 2 are pointed at a scratch file. So whatever the
student's code does with them -- ``print``, ``os.system(...)`` whose shell writes to fd 1,
``os.dup2(devnull, 1)`` -- the channel stays intact; Python-level prints are captured and sent
back with the result. Running in a separate process is what makes the checker safe: the parent
never imports the student's code (its ``sys.modules`` stays clean), kills this process when a
function exceeds its time (an infinite loop), and survives a crash (a segfault, ``os._exit``).
"""
import contextlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import traceback


def _send(channel, **msg):
    channel.write(json.dumps(msg) + "\n")
    channel.flush()


def _load(path):
    """Execute the student's file as a fresh module (local to this process)."""
    name = "_nfscratch_student_exercise"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module        # this process only: lets dataclasses etc. work inside it
    spec.loader.exec_module(module)
    return module


def _import_error_text(exc, path):
    if isinstance(exc, SyntaxError) and exc.lineno is None:     # e.g. null bytes in the file
        return f"your file is not valid Python source: {exc.msg}"
    if isinstance(exc, SyntaxError):
        return (f"your file has a syntax error at line {exc.lineno}: {exc.msg}"
                + (f" ({exc.text.strip()})" if exc.text else ""))
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    where = f" at line {frames[-1].lineno} ({(frames[-1].line or '').strip()})" if frames else ""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"importing your file raised {type(exc).__name__}{where}: {msg}"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path, exercise_id, names = os.path.abspath(argv[0]), argv[1], argv[2:]
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")   # os.dup: not inherited by children
    captured = io.StringIO()
    sys.stdout = captured                # the student's prints must not reach the channel
    import warnings
    warnings.simplefilter("ignore")
    from nfscratch.exercises.catalogue import EXERCISES
    from nfscratch.exercises.grader import grade
    exercise = EXERCISES[exercise_id]
    _send(channel, event="ready")
    scratch = tempfile.TemporaryFile()       # fds 1 and 2 from now on: the channel is elsewhere
    os.dup2(scratch.fileno(), 1)
    os.dup2(scratch.fileno(), 2)
    sys.stderr = captured                # (until here, a failed import reaches the parent's log)
    sys.path.append(os.path.dirname(path))   # the student's own helper modules
    try:
        module = _load(path)
    except BaseException as exc:         # noqa: BLE001 - SystemExit too: it is the student's
        _send(channel, event="import_error", error=_import_error_text(exc, path),
              printed=captured.getvalue()[-2000:])
        return 0
    _send(channel, event="imported")
    for name in names:
        _send(channel, event="start", function=name)
        captured.seek(0)
        captured.truncate()
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                result = grade(exercise.spec(name), module, path)
        except BaseException as exc:     # noqa: BLE001 - e.g. SystemExit from the student's code
            result = {"function": name, "status": "FAIL", "kind": "error", "summary": "",
                      "depends_on": [], "notes": [],
                      "rows": [{"check": name, "fd_error": None, "ref_error": None,
                                "threshold": "", "status": "FAIL", "kind": "rel",
                                "diagnosis": f"grading stopped: your code raised "
                                             f"{type(exc).__name__}: {exc}"}]}
        result["printed"] = captured.getvalue()[-2000:]
        _send(channel, event="result", function=name, result=result)
    _send(channel, event="done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
