"""Tests for the colorizer interface (issue 14): deepcolor's model and the baselines answer `predict_chroma`."""

from types import SimpleNamespace

import numpy as np
import pytest

from deepcolor.baselines import BASELINES, NAMES, baseline_class
from deepcolor.chroma import predict_chroma, working_luma
from deepcolor.colorize import METHODS, colorize_luma_record
from deepcolor.ensemble import Model
from deepcolor.features.reach import MIN_WORK_SIDE, min_working_side


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    return Model.load(tiny_model_dir)


def test_methods_unit():
    assert METHODS == ("deepcolor", *NAMES)
    assert tuple(BASELINES) == NAMES
    assert all(baseline_class(n) is BASELINES[n] for n in NAMES)


def test_baseline_class_exception():
    with pytest.raises(KeyError):
        baseline_class("deepcolor")


@pytest.mark.parametrize("patch_size, daisy_radius, expected", [(7, 5, MIN_WORK_SIDE), (41, 8, 21), (7, 30, 31)])
def test_min_working_side_unit(patch_size, daisy_radius, expected):
    assert min_working_side(SimpleNamespace(patch_size=patch_size, daisy_radius=daisy_radius)) == expected


def test_model_predict_chroma_shape(tiny_model):
    y = np.random.default_rng(0).random((300, 170), dtype=np.float32)
    uv, record = tiny_model.predict_chroma(y)
    y_work = working_luma(tiny_model, y)
    assert uv.shape == y_work.shape + (2,) and uv.dtype == np.float32
    expected, expected_record = predict_chroma(tiny_model, y_work)
    np.testing.assert_array_equal(uv, expected)
    assert record == expected_record


def test_colorize_luma_record_any_colorizer():
    """No type test: whatever answers predict_chroma is colorized, its chroma under the input's luminance."""
    class Constant:
        def predict_chroma(self, y):
            return np.full(y.shape + (2,), 0.05, np.float32), {"who": "constant"}

    y = np.linspace(0.2, 0.8, 12 * 9, dtype=np.float32).reshape(12, 9)
    rgb, record = colorize_luma_record(Constant(), y)
    assert record == {"who": "constant"} and rgb.shape == (12, 9, 3)
    assert (rgb[..., 2].astype(int) > rgb[..., 1]).all()  # positive U: blue above green
