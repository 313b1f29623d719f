r"""Auto-checked exercises: write a backward pass, get a precise verdict in seconds.

The solution files live in ``tutorials/exercises/`` of the source tree, each with its solutions
between ``### BEGIN SOLUTION`` and ``### END SOLUTION``. Two commands close the loop:

* ``nfscratch exercises make-student OUT_DIR`` (:func:`make_student`) writes the student
  versions, every solution replaced by ``raise NotImplementedError("...hint...")``;
* ``nfscratch exercises check FILE`` (:func:`check_file`) grades a student's file: for every
  function a table with the forward value and each gradient against nfscratch's own reference
  and against central differences (:func:`nfscratch.gradcheck.check_gradients`), PASS/FAIL with
  the thresholds stated, and a diagnosis line for the usual mistakes (not implemented, wrong
  shape, a transposed matrix, a sign error, a missing log-det term). The student's code runs in a
  child process with a time limit per function, so no bug of theirs can crash or hang the checker.

Modules: :mod:`~nfscratch.exercises.markers` (solution blocks, student versions),
:mod:`~nfscratch.exercises.catalogue` (the exercises, their inputs and references),
:mod:`~nfscratch.exercises.diagnose` (naming the mistake), :mod:`~nfscratch.exercises.grader`
(the checks), :mod:`~nfscratch.exercises.runner` (processes, time limits, the report).
"""
from .catalogue import EXERCISES, find_exercise
from .markers import MarkerError, make_student, strip_solutions
from .runner import DEFAULT_TIMEOUT, CheckReport, UsageError, check_file

__all__ = ["EXERCISES", "find_exercise", "make_student", "strip_solutions", "MarkerError",
           "check_file", "CheckReport", "UsageError", "DEFAULT_TIMEOUT"]
