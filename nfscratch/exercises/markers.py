r"""Solution blocks, their hint ladders, and the student version of an exercise file.

An exercise file is ordinary Python whose solution sits between two marker comments, with an
optional ladder of hints, most gentle first::

    def linear_backward(dy, cache):
        x, W = cache
        ### BEGIN SOLUTION
        ### HINT 1: a nudge: which quantity to think about first
        ### HINT 2: the equation
        ### HINT 3: the shape bookkeeping
        dx = dy @ W.T
        ...
        ### END SOLUTION
        return dx, dW, db

A hint may run over several marker lines with the same number (they are joined); the older
unnumbered ``### HINT:`` counts as level 1. The student version replaces every block, markers
included, by a comment and a ``raise NotImplementedError(...)`` at the indentation of the
``BEGIN`` marker. It carries no hint unless asked (``with_hints=True``): students reveal them one
level at a time with ``nfscratch exercises hint FILE`` (:func:`hints_for`). The instructor's file
stays runnable and gradeable as it is.
"""
import ast
import json
import re
import textwrap
from pathlib import Path

from .files import solutions_dir, write_new_files

__all__ = ["BEGIN", "END", "HINT", "MarkerError", "solution_blocks", "strip_solutions",
           "make_student", "default_source_dir", "hints_for", "stubbed_functions"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = "### HINT"

_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)")
_HINT = re.compile(r"^### HINT\s*(\d*)\s*:(.*)$")


class MarkerError(ValueError):
    """A solution file whose markers do not pair up (the message names the file and line)."""


def _indent(line):
    return line[:len(line) - len(line.lstrip())]


def solution_blocks(text, filename="<text>"):
    r"""Find the solution blocks of ``text``.

    Returns
    -------
    list of dict
        One per block, with ``begin``/``end`` (0-based line numbers of the markers), ``indent``,
        ``hints`` (list of str: level 1 first), ``function`` (the enclosing ``def``, or None) and
        ``n_lines`` (lines of solution code, hints excluded).

    Raises
    ------
    MarkerError
        For an END without a BEGIN, a BEGIN inside a block, a BEGIN never closed, or a hint
        ladder with a gap (``HINT 3`` without ``HINT 2``).

    Examples
    --------
    >>> src = ("def f(x):\n    ### BEGIN SOLUTION\n    ### HINT 1: think of doubling\n"
    ...        "    ### HINT 2: y = 2 x\n    y = 2 * x\n    ### END SOLUTION\n    return y\n")
    >>> [(b["function"], b["hints"], b["n_lines"]) for b in solution_blocks(src)]
    [('f', ['think of doubling', 'y = 2 x'], 1)]
    """
    lines = text.splitlines()
    blocks, current = [], None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if current is not None:
                raise MarkerError(f"{filename}:{i + 1}: '{BEGIN}' inside the block opened at line "
                                  f"{current['begin'] + 1}; close it with '{END}' first.")
            current = {"begin": i, "indent": _indent(line), "hints": {}, "n_lines": 0,
                       "function": _enclosing_function(lines, i)}
        elif stripped.startswith(END):
            if current is None:
                raise MarkerError(f"{filename}:{i + 1}: '{END}' without a matching '{BEGIN}'.")
            current["end"] = i
            current["hints"] = _ladder(current["hints"], filename, current["begin"])
            blocks.append(current)
            current = None
        elif current is not None:
            m = _HINT.match(stripped)
            if m:
                level = int(m.group(1) or 1)
                current["hints"].setdefault(level, []).append(m.group(2).strip())
            elif stripped and not stripped.startswith("#"):
                current["n_lines"] += 1
    if current is not None:
        raise MarkerError(f"{filename}:{current['begin'] + 1}: '{BEGIN}' is never closed by '{END}'.")
    return blocks


def _ladder(by_level, filename, begin):
    """``{level: [pieces]}`` -> the list of hints, level 1 first; levels must be 1, 2, ..."""
    levels = sorted(by_level)
    if levels != list(range(1, len(levels) + 1)):
        raise MarkerError(f"{filename}:{begin + 1}: the hints of this block are numbered {levels}; "
                          "number them 1, 2, 3, ... without gaps.")
    return [" ".join(by_level[k]).strip() for k in levels]


def _enclosing_function(lines, i):
    """Name of the innermost ``def`` above line ``i`` that is less indented than it."""
    width = len(_indent(lines[i]))
    for j in range(i - 1, -1, -1):
        m = _DEF.match(lines[j])
        if m and len(m.group(1)) < width:
            return m.group(2)
    return None


def strip_solutions(text, filename="<text>", width=95, with_hints=False):
    r"""Return the student version of ``text``: every solution block replaced by a stub.

    The stub says how much code is expected and where the hints are; with ``with_hints`` the
    hint ladder is written above it as comments.

    Examples
    --------
    >>> src = ("def f(x):\n    ### BEGIN SOLUTION\n    ### HINT 1: think of doubling\n"
    ...        "    y = 2 * x\n    ### END SOLUTION\n    return y\n")
    >>> print(strip_solutions(src, "ex0.py"))
    def f(x):
        # TODO: your code here (about 1 line).
        # Stuck? `nfscratch exercises hint ex0.py` (hints, one level at a time).
        raise NotImplementedError("f: not implemented yet")
        return y
    <BLANKLINE>
    >>> print(strip_solutions(src, "ex0.py", with_hints=True).splitlines()[2])
        # Hint 1: think of doubling
    """
    blocks = solution_blocks(text, filename)
    lines = text.splitlines(keepends=True)
    name = Path(filename).name
    out, pos = [], 0
    for blk in blocks:
        out.extend(lines[pos:blk["begin"]])
        ind = blk["indent"]
        n = blk["n_lines"]
        where = blk["function"] or "this exercise"
        out.append(f"{ind}# TODO: your code here (about {n} line{'s' if n != 1 else ''}).\n")
        if blk["hints"] and not with_hints:
            out.append(f"{ind}# Stuck? `nfscratch exercises hint {name}` (hints, one level at a "
                       f"time).\n")
        if with_hints:
            for level, hint in enumerate(blk["hints"], 1):
                wrapped = textwrap.wrap(f"Hint {level}: {hint}", width=max(30, width - len(ind) - 2),
                                        break_on_hyphens=False)
                out.extend(f"{ind}# {piece}\n" for piece in wrapped)
        out.append(f"{ind}raise NotImplementedError({_literal(f'{where}: not implemented yet')})\n")
        pos = blk["end"] + 1
    out.extend(lines[pos:])
    result = "".join(out)
    try:
        ast.parse(result, filename=filename)
    except SyntaxError as exc:   # a marker placed where a statement cannot go
        raise MarkerError(f"{filename}: the student version is not valid Python ({exc.msg}, line "
                          f"{exc.lineno}); put each '{BEGIN}' where a statement may stand.") from None
    return result


def _literal(text):
    """A double-quoted Python string literal for ``text``."""
    return json.dumps(text, ensure_ascii=False)


def default_source_dir():
    """The folder of the exercise solutions (in the source tree or shipped in the package), or
    None."""
    return solutions_dir()


def _resolve_source(source_dir):
    source_dir = default_source_dir() if source_dir is None else Path(source_dir)
    if source_dir is None or not Path(source_dir).is_dir():
        raise FileNotFoundError("source: cannot find the solution files (tutorials/exercises of "
                                "the source tree, nfscratch/course/exercises of an installed "
                                "copy); pass --source DIR.")
    return Path(source_dir)


def make_student(out_dir, source_dir=None, overwrite=False, with_hints=False):
    """Write the student version of every exercise in ``source_dir`` to ``out_dir``.

    Every ``*.py`` file is written with its solutions stripped; other files (the README) are
    copied as they are. Nothing is written if any target already exists, unless ``overwrite``.
    Files get the permissions of any new file (``0644`` under the umask ``022``).

    Parameters
    ----------
    out_dir : str or Path
        Created if missing.
    source_dir : str or Path, optional
        The solution files; default :func:`default_source_dir`.
    overwrite : bool
    with_hints : bool
        Write each exercise's hint ladder into the hand-out as comments (default: no hints;
        students ask for them with ``nfscratch exercises hint FILE``).

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    FileNotFoundError
        No source directory, or one without exercise files.
    FileExistsError
        A target exists and ``overwrite`` is False (nothing was written).
    MarkerError
        A solution file's markers do not pair up (nothing was written).
    """
    source_dir = _resolve_source(source_dir)
    files = sorted(p for p in source_dir.iterdir()
                   if p.is_file() and (p.suffix == ".py" or p.name == "README.md")
                   and not p.name.startswith("_"))
    if not any(p.suffix == ".py" for p in files):
        raise FileNotFoundError(f"source: no exercise files (*.py) in {source_dir}.")
    out_dir = Path(out_dir)
    if out_dir.resolve() == source_dir.resolve():
        raise FileExistsError(f"out_dir: {out_dir} is the directory of the solutions themselves; "
                              "choose another one.")
    # build everything first: a bad marker must not leave half a hand-out behind
    contents = {}
    for p in files:
        text = p.read_text(encoding="utf-8")
        contents[p.name] = (strip_solutions(text, str(p), with_hints=with_hints)
                            if p.suffix == ".py" else text)
    return write_new_files(out_dir, contents, overwrite=overwrite)


# ------------------------------------------------------------------------------------------------
def stubbed_functions(text):
    """Names of the functions of ``text`` whose body still raises ``NotImplementedError``
    (a hand-out's unfinished functions); empty when the text does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for stmt in node.body:
                exc = stmt.exc if isinstance(stmt, ast.Raise) else None
                target = exc.func if isinstance(exc, ast.Call) else exc
                if isinstance(target, ast.Name) and target.id == "NotImplementedError":
                    names.append(node.name)
                    break
    return names


def hints_for(solution_file, functions=None):
    """The hint ladders of a solution file: ``{function: [hint 1, hint 2, ...]}``.

    Parameters
    ----------
    solution_file : str or Path
        An exercise file with its solutions (not a hand-out: hand-outs carry no markers).
    functions : list of str, optional
        Keep only these functions (in this order).

    Raises
    ------
    KeyError
        A requested function has no solution block in the file (the message lists those that do).
    """
    text = Path(solution_file).read_text(encoding="utf-8")
    ladders = {}
    for blk in solution_blocks(text, str(solution_file)):
        ladders.setdefault(blk["function"] or "(module level)", []).extend(blk["hints"])
    if functions is None:
        return ladders
    unknown = [f for f in functions if f not in ladders]
    if unknown:
        raise KeyError(f"function: {', '.join(unknown)} is not an exercise of "
                       f"{Path(solution_file).name}; its exercises are {', '.join(ladders)}.")
    return {f: ladders[f] for f in functions}
