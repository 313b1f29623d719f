"""Sub-commands of the ``nfscratch`` command line, one module each (see :mod:`nfscratch.cli`).

To add a command, write ``nfscratch/commands/<name>.py`` with ``register(subparsers)`` and list
its module name here.
"""
COMMANDS = ["demo", "train", "gradcheck", "doctor", "plot", "exercises", "tutorials", "bench"]
