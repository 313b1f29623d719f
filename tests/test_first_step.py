"""What a fresh process loads before its first training step (benchmarks/README.md, "Warm first
step"): ``import nfscratch`` does not import Numba; the first kernel sets Numba up without
importing SciPy's linear algebra; and Numba code that does need BLAS still gets it afterwards."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

FIRST_STEP = r"""
import json, sys
import numpy as np
import nfscratch
from nfscratch import datasets, models
from nfscratch.losses import reverse_kl_step
from nfscratch.optim import Adam
after_import = "numba" in sys.modules
flow = models.planar_flow(2, 4, rng=0)
opt = Adam(1e-3)
loss = reverse_kl_step(flow, datasets.energy("U1"), 64, np.random.default_rng(0))
opt.step(flow.params(), flow.grads())
print(json.dumps({"numba_after_import": after_import,
                  "kernels_ran": "nfscratch.kernels.planar" in sys.modules,
                  "scipy_linalg": "scipy.linalg" in sys.modules,
                  "blas_entry_left": "scipy.linalg.cython_blas" in sys.modules
                                     and sys.modules["scipy.linalg.cython_blas"] is None}))
if len(sys.argv) > 1:                     # user Numba code with np.dot, compiled afterwards
    import numba
    dot = numba.njit(lambda a, b: np.dot(a, b))
    print(json.dumps(float(dot(np.arange(3.0), np.ones(3)))))
"""


def _run(*args):
    env = {**os.environ, "NFSCRATCH_BACKEND": "numba"}
    out = subprocess.run([sys.executable, "-c", FIRST_STEP, *args], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.strip().splitlines()]


def test_first_step_loads_numba_without_scipy_linalg():
    (state,) = _run()
    assert state == {"numba_after_import": False, "kernels_ran": True, "scipy_linalg": False,
                     "blas_entry_left": False}


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="needs SciPy (Numba's BLAS)")
def test_numba_code_needing_blas_still_compiles_afterwards():
    state, value = _run("dot")
    assert state["scipy_linalg"] is False and value == 3.0
