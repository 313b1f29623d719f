"""Packaging beyond pyproject.toml: ship the course with the package.

The tutorials and the exercise solutions stay in ``tutorials/`` at the root of the repository
(where they are edited, run and tested), and a built wheel carries them inside the package as
``nfscratch/course/`` (``nfscratch.course`` is mapped onto ``tutorials/``), so that
``nfscratch exercises ...`` and ``nfscratch tutorials DIR`` work from an installed copy; see
``nfscratch/exercises/files.py``. The mapping cannot be written in pyproject.toml together with
automatic package discovery, hence this file; everything else is in pyproject.toml.
"""
from setuptools import find_packages, setup

COURSE = ["nfscratch.course", "nfscratch.course.exercises"]

setup(packages=find_packages(include=["nfscratch", "nfscratch.*"]) + COURSE,
      package_dir={"nfscratch.course": "tutorials"})
