"""Show a tutorial's figure: inline in a notebook, as a numbered PNG file when run as a script.

Every tutorial calls ``show(fig, name)`` after building a figure:

* inside a Jupyter kernel (classic Notebook, JupyterLab, VS Code, nbclient) the figure is rendered
  to PNG and displayed as one ``image/png`` output -- a matplotlib ``Figure`` built without
  ``pyplot`` has no inline renderer of its own, so displaying the object would print only
  ``<Figure size ...>``;
* run as a plain script (``python tutorials/03_planar_flows.py``, or ``%run`` in a terminal
  IPython) it is saved to ``nfscratch_out/tutorials/<script>/run-NNN/<KK>_<name>.png`` under the
  current directory and the path is printed. Each run of a script gets a fresh ``run-NNN``
  folder and files are opened for exclusive creation, so nothing saved earlier is overwritten.
  The environment variable ``NFSCRATCH_FIGURES`` moves the root folder
  (``NFSCRATCH_FIGURES=/tmp/figs``) or turns saving off (``NFSCRATCH_FIGURES=off``).

Either way the figure is closed afterwards (a tutorial draws dozens). IPython is optional: it is
only used when the code already runs inside it.
"""
import base64
import io
import os
import re
import sys
from pathlib import Path

__all__ = ["show", "FIGURES_ENV", "DEFAULT_ROOT"]

FIGURES_ENV = "NFSCRATCH_FIGURES"
DEFAULT_ROOT = Path("nfscratch_out") / "tutorials"
DPI = 110


def show(fig, name):
    """Display ``fig`` inline in a notebook, or save it as a PNG when run as a script; close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    name : str
        A short name for the file, e.g. ``"invertibility"``; characters other than letters,
        digits, ``-``, ``_`` and ``.`` become ``_``.

    Returns
    -------
    pathlib.Path or None
        The file written, or None (shown inline, or saving turned off with
        ``NFSCRATCH_FIGURES=off``).

    Examples
    --------
    Run as ``python tutorials/03_planar_flows.py`` (the first run; the next one writes to
    ``run-002``):

    >>> show(fig, "invertibility")             # doctest: +SKIP
    saved nfscratch_out/tutorials/03_planar_flows/run-001/02_invertibility.png
    """
    if not callable(getattr(fig, "savefig", None)):
        raise TypeError(f"fig: expected a matplotlib Figure, got {type(fig).__name__}.")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name: expected a short non-empty string such as 'warp', got {name!r}.")
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
        png = buffer.getvalue()
    finally:
        _close(fig)
    if _in_kernel():
        from IPython.display import display
        # raw mime data: exactly one image/png output, with no text/plain fallback to print
        display({"image/png": base64.b64encode(png).decode("ascii")}, raw=True)
        return None
    return _SAVER.save(png, name)


def _in_kernel():
    """True inside a Jupyter kernel (not a terminal IPython, which cannot show images)."""
    ipython = sys.modules.get("IPython")      # never imported here: running inside it loaded it
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _close(fig):
    # Figures built without pyplot are freed with their last reference; pyplot keeps its own
    # until closed (and the inline backend would draw it a second time).
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


class _RunFolder:
    """This process's figure folder, claimed on the first save, and the figure counter."""

    def __init__(self):
        self.folder, self.count = None, 0

    def save(self, png, name):
        setting = os.environ.get(FIGURES_ENV, "").strip()
        if setting.lower() == "off":
            return None
        root = (Path(setting) if setting else DEFAULT_ROOT) / _script_name()
        if self.folder is None or self.folder.parent != root or not self.folder.is_dir():
            self.folder, self.count = _claim_run_folder(root), 0
        self.count += 1
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip())
        path = self.folder / f"{self.count:02d}_{stem}.png"
        with open(path, "xb") as f:          # "x": fail rather than overwrite
            f.write(png)
        print(f"saved {path}")
        return path


def _script_name():
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(main).stem if main else "interactive"


def _claim_run_folder(root):
    """Create and return ``root/run-NNN`` with the first NNN not taken (atomic: mkdir)."""
    root.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in root.iterdir() if (m := re.fullmatch(r"run-(\d+)", p.name))]
    k = max(taken, default=0) + 1
    while True:
        folder = root / f"run-{k:03d}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:        # another run of the same script got there first
            k += 1


_SAVER = _RunFolder()
