"""Shared test settings: one tolerance table and a seeded random generator.

With ``--import-mode=importlib`` (setup.cfg) test modules cannot import this file,
so both are served as fixtures.
"""

import numpy as np
import pytest

# Tolerances for ``np.testing.assert_allclose``, by the dtype of the computation under
# test: float32 for anything that runs in float32 (OpenCV, our float32 outputs), float64
# for numpy float64 arithmetic.
TOLERANCES = {
    np.float32: {"rtol": 1e-5, "atol": 1e-6},
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
}


@pytest.fixture
def tol():
    """``tol(dtype)`` -> keyword tolerances for ``np.testing.assert_allclose``."""
    return lambda dtype: TOLERANCES[np.dtype(dtype).type]


@pytest.fixture
def rng():
    """A fresh seeded generator per test, so results do not depend on test order."""
    return np.random.default_rng(20150101)
