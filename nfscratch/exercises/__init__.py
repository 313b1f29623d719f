r"""Auto-checked exercises: write a backward pass, get a precise verdict in seconds.

The solution files live in ``tutorials/exercises/`` of the source tree (shipped inside the
package as ``nfscratch/course/exercises/``), each with its solutions between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` and a ladder of hints. The commands:

* ``nfscratch exercises make-student OUT_DIR`` (:func:`make_student`) writes the student
  versions, every solution replaced by ``raise NotImplementedError(...)``, without hints unless
  asked (``--with-hints``);
* ``nfscratch exercises hint FILE [--level K]`` (:func:`hint_text`) reveals the hints one level
  at a time: a nudge, then the equation, then the shape bookkeeping;
* ``nfscratch exercises check FILE`` (:func:`check_file`) grades a student's file: for every
  function a table with the forward value and each gradient against nfscratch's own reference
  and against central differences (:func:`nfscratch.gradcheck.check_gradients`), PASS/FAIL with
  the thresholds stated, and a diagnosis line for the usual mistakes (not implemented, wrong
  shape, a transposed matrix, a sign error, a missing log-det term). The student's code runs in a
  child process with a time limit per function, so no bug of theirs can crash or hang the checker;
* ``nfscratch exercises grade DIR`` (:func:`~nfscratch.exercises.gradebook.grade_folder`) grades
  a folder of submissions into one CSV or Markdown table, each file in its own process.

Modules: :mod:`~nfscratch.exercises.markers` (solution blocks, student versions),
:mod:`~nfscratch.exercises.catalogue` (the exercises, their inputs and references),
:mod:`~nfscratch.exercises.diagnose` (naming the mistake), :mod:`~nfscratch.exercises.grader`
(the checks), :mod:`~nfscratch.exercises.runner` (processes, time limits, the report),
:mod:`~nfscratch.exercises.hints`, :mod:`~nfscratch.exercises.gradebook`,
:mod:`~nfscratch.exercises.files` (where the course files are; writing new files).
"""
from .catalogue import EXERCISES, find_exercise
from .markers import MarkerError, make_student, strip_solutions
from .runner import DEFAULT_TIMEOUT, CheckReport, UsageError, check_file
from .hints import hint_text
from .gradebook import grade_folder

__all__ = ["EXERCISES", "find_exercise", "make_student", "strip_solutions", "MarkerError",
           "check_file", "CheckReport", "UsageError", "DEFAULT_TIMEOUT", "hint_text",
           "grade_folder"]
