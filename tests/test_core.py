"""Working size (deepcolor/resize.py), colour detection and luminance (deepcolor/color.py)."""

import numpy as np
import pytest

from deepcolor.color import is_colour, luminance
from deepcolor.resize import working_shape


@pytest.mark.parametrize("shape, size, expected", [
    ((321, 481), 256, (171, 256)),  # BSDS landscape
    ((481, 321), 256, (256, 171)),
    ((100, 100), 256, (100, 100)),  # never upsampled
    ((3000, 1), 256, (256, 1)),
])
def test_working_shape_unit(shape, size, expected):
    assert working_shape(shape, size) == expected


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_is_colour_unit(dtype):
    grey3 = np.full((13, 9, 3), 7, dtype)
    assert not is_colour(grey3)
    assert not is_colour(grey3[..., 0])  # 2-D is grey
    grey3[4, 2, 2] += 1  # within the tolerance of 1 (JPEG noise in grey-as-RGB files)
    assert not is_colour(grey3)
    grey3[4, 2, 0] += 3
    assert is_colour(grey3)


def test_luminance_unit():
    rgb = np.zeros((13, 9, 3), np.uint8)
    rgb[..., 0] = 255  # pure red: Y = 0.299
    np.testing.assert_allclose(luminance(rgb), 0.299, atol=1e-6)
    grey16 = np.full((13, 9), 65535, np.uint16)
    np.testing.assert_allclose(luminance(grey16), 1.0)
