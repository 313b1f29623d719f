r"""Solution blocks and the student version of an exercise file.

An exercise file is ordinary Python whose solution sits between two marker comments::

    def linear_backward(dy, cache):
        x, W = cache
        ### BEGIN SOLUTION
        ### HINT: dx = dy W^T ...
        dx = dy @ W.T
        ...
        ### END SOLUTION
        return dx, dW, db

The student version replaces every block, markers included, by a comment and a
``raise NotImplementedError(...)`` at the indentation of the ``BEGIN`` marker; the message names
the function and carries the hint (the ``### HINT:`` lines, which may span several lines). The
instructor's file stays runnable and gradeable as it is.
"""
import ast
import json
import os
import re
import tempfile
import textwrap
from pathlib import Path

__all__ = ["BEGIN", "END", "HINT", "MarkerError", "solution_blocks", "strip_solutions",
           "make_student", "default_source_dir"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = "### HINT:"

_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)")


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
        ``hint`` (str, may be empty), ``function`` (the enclosing ``def``, or None) and
        ``n_lines`` (lines of solution code, hints excluded).

    Raises
    ------
    MarkerError
        For an END without a BEGIN, a BEGIN inside a block, or a BEGIN never closed.

    Examples
    --------
    >>> src = "def f(x):\n    ### BEGIN SOLUTION\n    ### HINT: double it\n    y = 2 * x\n    ### END SOLUTION\n    return y\n"
    >>> [(b["function"], b["hint"], b["n_lines"]) for b in solution_blocks(src)]
    [('f', 'double it', 1)]
    """
    lines = text.splitlines()
    blocks, current = [], None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if current is not None:
                raise MarkerError(f"{filename}:{i + 1}: '{BEGIN}' inside the block opened at line "
                                  f"{current['begin'] + 1}; close it with '{END}' first.")
            current = {"begin": i, "indent": _indent(line), "hint": [], "n_lines": 0,
                       "function": _enclosing_function(lines, i)}
        elif stripped.startswith(END):
            if current is None:
                raise MarkerError(f"{filename}:{i + 1}: '{END}' without a matching '{BEGIN}'.")
            current["end"] = i
            current["hint"] = " ".join(current["hint"]).strip()
            blocks.append(current)
            current = None
        elif current is not None:
            if stripped.startswith(HINT):
                current["hint"].append(stripped[len(HINT):].strip())
            elif stripped and not stripped.startswith("#"):
                current["n_lines"] += 1
    if current is not None:
        raise MarkerError(f"{filename}:{current['begin'] + 1}: '{BEGIN}' is never closed by '{END}'.")
    return blocks


def _enclosing_function(lines, i):
    """Name of the innermost ``def`` above line ``i`` that is less indented than it."""
    width = len(_indent(lines[i]))
    for j in range(i - 1, -1, -1):
        m = _DEF.match(lines[j])
        if m and len(m.group(1)) < width:
            return m.group(2)
    return None


def strip_solutions(text, filename="<text>", width=95):
    r"""Return the student version of ``text``: every solution block replaced by a stub.

    Examples
    --------
    >>> src = "def f(x):\n    ### BEGIN SOLUTION\n    ### HINT: double it\n    y = 2 * x\n    ### END SOLUTION\n    return y\n"
    >>> print(strip_solutions(src))
    def f(x):
        # TODO: your code here (about 1 line).
        raise NotImplementedError("f: not implemented yet. Hint: double it")
        return y
    <BLANKLINE>
    """
    blocks = solution_blocks(text, filename)
    lines = text.splitlines(keepends=True)
    out, pos = [], 0
    for blk in blocks:
        out.extend(lines[pos:blk["begin"]])
        ind = blk["indent"]
        n = blk["n_lines"]
        where = blk["function"] or "this exercise"
        hint = blk["hint"]
        out.append(f"{ind}# TODO: your code here (about {n} line{'s' if n != 1 else ''}).\n")
        message = f"{where}: not implemented yet." + (f" Hint: {hint}" if hint else "")
        pieces = textwrap.wrap(message, width=max(30, width - len(ind) - 6),
                               drop_whitespace=False, break_on_hyphens=False)
        if len(pieces) == 1:
            out.append(f"{ind}raise NotImplementedError({_literal(message)})\n")
        else:   # one string literal per line, joined by implicit concatenation
            out.append(f"{ind}raise NotImplementedError(\n")
            out.extend(f"{ind}    {_literal(p)}\n" for p in pieces[:-1])
            out.append(f"{ind}    {_literal(pieces[-1])})\n")
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
    """``tutorials/exercises`` of the source checkout nfscratch was installed from, or None."""
    here = Path(__file__).resolve().parents[2] / "tutorials" / "exercises"
    return here if here.is_dir() else None


def make_student(out_dir, source_dir=None, overwrite=False):
    """Write the student version of every exercise in ``source_dir`` to ``out_dir``.

    Every ``*.py`` file is written with its solutions stripped; other files (the README) are
    copied as they are. Nothing is written if any target already exists, unless ``overwrite``.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing.
    source_dir : str or Path, optional
        The solution files; default :func:`default_source_dir`.
    overwrite : bool

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
    source_dir = default_source_dir() if source_dir is None else Path(source_dir)
    if source_dir is None or not Path(source_dir).is_dir():
        raise FileNotFoundError("source: cannot find the solution files (tutorials/exercises in "
                                "the nfscratch source tree); pass --source DIR.")
    source_dir = Path(source_dir)
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
        contents[p.name] = strip_solutions(text, str(p)) if p.suffix == ".py" else text
    existing = [out_dir / nm for nm in contents if (out_dir / nm).exists()]
    if existing and not overwrite:
        names = ", ".join(str(p) for p in existing)
        raise FileExistsError(f"refusing to overwrite existing file(s): {names}. Pass --overwrite "
                              "(overwrite=True) to replace them, or choose an empty directory.")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for nm, text in contents.items():
        target = out_dir / nm
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{nm}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        written.append(target)
    return written
