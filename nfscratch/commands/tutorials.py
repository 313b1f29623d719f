"""``nfscratch tutorials DIR [--notebooks] [--overwrite]``: copy the tutorials into a folder.

The tutorials ship with nfscratch (see :mod:`nfscratch.exercises.files`), so this works from an
installed copy as well as from a source checkout. They are written as the jupytext "percent"
scripts they are (they run as plain Python and open as notebooks with jupytext), or, with
``--notebooks``, converted to ``.ipynb`` notebooks (needs jupytext: ``pip install
"nfscratch[notebooks]"``). The exercises are handed out separately:
``nfscratch exercises make-student DIR``.
"""
import sys


def register(sub):
    p = sub.add_parser("tutorials", help="copy the tutorials (scripts, or notebooks with "
                                         "--notebooks) into a folder")
    p.add_argument("out_dir", metavar="DIR", help="folder to write into (created if missing)")
    p.add_argument("--notebooks", action="store_true",
                   help="write .ipynb notebooks instead of jupytext .py scripts (needs jupytext)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files that already exist (default: refuse, write nothing)")
    p.set_defaults(func=run_tutorials)


def tutorial_files(notebooks=False):
    """``{file name: content}`` of every tutorial and the tutorials' README.

    Raises
    ------
    FileNotFoundError
        The course files are not there (a broken installation).
    ImportError
        ``notebooks`` is set and jupytext is not installed.
    """
    from ..exercises.files import course_dir
    root = course_dir()
    scripts = sorted(root.glob("[0-9][0-9]*_*.py")) if root is not None else []
    if not scripts:
        raise FileNotFoundError("cannot find the tutorials (tutorials/ of the source tree, "
                                "nfscratch/course of an installed copy): is the installation "
                                "complete?")
    contents = {}
    if (root / "README.md").is_file():
        contents["README.md"] = (root / "README.md").read_text(encoding="utf-8")
    if not notebooks:
        contents.update((p.name, p.read_text(encoding="utf-8")) for p in scripts)
        return contents
    try:
        import jupytext
    except ImportError:
        raise ImportError("--notebooks needs jupytext: pip install \"nfscratch[notebooks]\" "
                          "(or pip install jupytext), or copy the scripts without "
                          "--notebooks.") from None
    for p in scripts:
        nb = jupytext.read(p)
        contents[p.with_suffix(".ipynb").name] = jupytext.writes(nb, fmt="ipynb")
    return contents


def run_tutorials(args):
    from ..exercises.files import write_new_files
    try:
        contents = tutorial_files(args.notebooks)
        written = write_new_files(args.out_dir, contents, overwrite=args.overwrite)
    except (FileNotFoundError, ImportError) as exc:
        print(f"nfscratch tutorials: {exc}", file=sys.stderr)
        return 2
    except (FileExistsError, OSError) as exc:
        print(f"nfscratch tutorials: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    kind = "notebooks" if args.notebooks else "scripts (run with python, or open with jupytext)"
    print(f"{len(written)} files written: the tutorials as {kind}. The exercises: "
          f"`nfscratch exercises make-student DIR`.")
    return 0
