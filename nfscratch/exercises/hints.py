r"""``nfscratch exercises hint FILE``: an exercise's hints, one level at a time.

The hints live only in the solution files shipped with nfscratch (``### HINT 1:`` ... lines,
see :mod:`~nfscratch.exercises.markers`); a hand-out has none unless the instructor asked. Given
the student's file, :func:`hint_text` finds its exercise (the ``EXERCISE = "..."`` line, else
the file name), reads that exercise's solution file and shows hints ``1..level`` for the
functions the student has not written yet (those still raising ``NotImplementedError``). It
works for every exercise whose solution file is present, catalogued or not.
"""
import textwrap
from pathlib import Path

from .._validate import check_positive_int
from .catalogue import find_exercise
from .files import solutions_dir
from .markers import hints_for, stubbed_functions
from .runner import exercise_of

__all__ = ["hint_text", "solution_file_for"]

#: what each level of the ladder is
LEVELS = {1: "a nudge", 2: "the equation", 3: "the shape bookkeeping"}


def solution_file_for(path, exercise=None):
    """The solution file of the exercise that ``path`` (a student's file) belongs to."""
    path = Path(path)
    root = solutions_dir()
    if root is None:
        raise FileNotFoundError("cannot find the exercise solution files that carry the hints "
                                "(tutorials/exercises, or nfscratch/course/exercises when "
                                "installed).")
    ex = find_exercise(exercise or exercise_of(path) or "")
    candidates = ([root / ex.filename] if ex is not None else []) + [root / path.name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"cannot tell which exercise {path.name} is (no EXERCISE = \"...\" "
                            f"line naming a known exercise, and no solution file {path.name} in "
                            f"{root}); pass --exercise.")


def hint_text(path, level=1, functions=None, exercise=None, width=92):
    """The hints ``1..level`` for the unfinished functions of ``path``, as printable text.

    Raises
    ------
    FileNotFoundError
        No such file, or no solution file for its exercise.
    TypeError, ValueError
        ``level`` is not an integer >= 1.
    KeyError
        A requested function is not one of the exercise's.
    """
    path = Path(path)
    level = check_positive_int(level, "level")
    if not path.is_file():
        raise FileNotFoundError(f"FILE: no such file: {path}")
    if path.suffix != ".py":
        raise ValueError(f"FILE: expected your exercise file (.py), got {path.name}")
    solution = solution_file_for(path, exercise)
    ladders = hints_for(solution, functions)
    if functions is None:
        todo = set(stubbed_functions(path.read_text(encoding="utf-8", errors="replace")))
        ladders = {f: h for f, h in ladders.items() if f in todo} or ladders
    ladders = {f: h for f, h in ladders.items() if h}
    if not ladders:
        return f"{path.name}: this exercise has no hints."
    deepest = max(len(h) for h in ladders.values())
    shown = min(level, deepest)
    lines = [f"Hints for {path.name}, level {shown} of {deepest} "
             f"({', '.join(LEVELS.get(k, f'hint {k}') for k in range(1, shown + 1))}):"]
    for name, ladder in ladders.items():
        lines += ["", name]
        for k, hint in enumerate(ladder[:shown], 1):
            lines += textwrap.wrap(hint, width=width, initial_indent=f"  {k}. ",
                                   subsequent_indent="     ", break_on_hyphens=False)
    lines.append("")
    if shown < deepest:
        lines.append(f"Still stuck? `nfscratch exercises hint {path.name} --level {shown + 1}` "
                     f"gives {LEVELS.get(shown + 1, 'the next hint')}.")
    else:
        lines.append("That was the last hint. `nfscratch exercises check "
                     f"{path.name}` says what is still wrong.")
    return "\n".join(lines)
