"""Tests for the colorizer interface (issue 14): deepcolor's model and the baselines answer `predict_chroma`;
and `compose`, which puts their chroma under the full-resolution luminance (issue 19)."""

from types import SimpleNamespace

import numpy as np
import pytest

from deepcolor import colorize as dcolorize
from deepcolor.baselines import BASELINES, NAMES, baseline_class
from deepcolor.chroma import predict_chroma, working_luma
from deepcolor.color import combine_luma_chroma, to_uint16, to_uint8
from deepcolor.colorize import METHODS, _linear_taps, colorize_luma_record, compose
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


# --- compose: the full-resolution output ---------------------------------------------------------

def _luma_and_chroma(rng, shape=(67, 45), work=(9, 13), spread=0.4):
    """Luminance (H, W) with both extremes, and chroma at a smaller size, partly out of gamut."""
    y = rng.random(shape, dtype=np.float32)
    y[0, 0], y[-1, -1] = 0.0, 1.0
    uv = rng.uniform(-spread, spread, work + (2,)).astype(np.float32)
    return y, uv


def _previous_compose(y, uv_work, dtype=np.uint8):
    """compose before issue 19: every output row gathered and interpolated at once, then combined."""
    import cv2

    uv_rows = cv2.resize(uv_work, (y.shape[1], uv_work.shape[0]), interpolation=cv2.INTER_LINEAR)
    below, above, weight = _linear_taps(uv_work.shape[0], y.shape[0])
    w = weight[:, None, None]
    uv = uv_rows[below] * (1 - w) + uv_rows[above] * w  # (H, W, 2)
    rgb = combine_luma_chroma(y, uv)
    return to_uint8(rgb) if np.dtype(dtype) == np.uint8 else to_uint16(rgb)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape, work", [((67, 45), (9, 13)), ((45, 67), (13, 9)), ((13, 9), (13, 9)),
                                         ((1, 1), (1, 1)), ((31, 1), (2, 1)), ((200, 300), (1, 2))])
def test_compose_shape_dtype(rng, dtype, shape, work):
    y, uv = _luma_and_chroma(rng, shape, work)
    out = compose(y, uv, dtype)
    assert out.shape == shape + (3,) and out.dtype == dtype


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_compose_unit_previous_path(rng, dtype, monkeypatch):
    # Strips of a few rows on 3 threads, against the previous all-rows float path: bit for bit.
    import cv2

    monkeypatch.setattr(dcolorize, "STRIP_PIXELS", 7 * 67)  # 7 to 15 rows
    monkeypatch.setattr(cv2, "getNumThreads", lambda: 3)
    for shape, work in [((67, 45), (9, 13)), ((45, 67), (13, 9)), ((40, 33), (40, 33)), ((29, 31), (30, 3))]:
        y, uv = _luma_and_chroma(rng, shape, work)
        np.testing.assert_array_equal(compose(y, uv, dtype), _previous_compose(y, uv, dtype))


def test_compose_unit_opencv_resize(rng):
    # Against OpenCV's own bilinear resize of U, V to the full size: within 1 level (the
    # interpolation weights are computed in another order), nearly always equal.
    import cv2

    y, uv = _luma_and_chroma(rng, (301, 203), (37, 25))
    full = cv2.resize(uv, (203, 301), interpolation=cv2.INTER_LINEAR)
    expected = to_uint8(combine_luma_chroma(y, full))
    diff = np.abs(compose(y, uv).astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_compose_invariant_luminance(rng):
    y, uv = _luma_and_chroma(rng, spread=2.0)  # mostly out of gamut
    rgb = compose(y, uv).astype(np.float64) / 255
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.abs(luma - y).max() <= 0.5 / 255 + 1e-6


def test_compose_invariant_strips_and_threads(rng, monkeypatch):
    import cv2

    y, uv = _luma_and_chroma(rng, (131, 57), (17, 8))
    whole = compose(y, uv)
    for rows, threads in [(1, 1), (5, 2), (64, 4)]:
        monkeypatch.setattr(dcolorize, "STRIP_PIXELS", rows * 57)
        monkeypatch.setattr(cv2, "getNumThreads", lambda: threads)
        np.testing.assert_array_equal(compose(y, uv), whole)


def test_compose_empty():
    assert compose(np.zeros((0, 5), np.float32), np.zeros((1, 1, 2), np.float32)).shape == (0, 5, 3)


@pytest.mark.parametrize("y, uv, dtype, error, match", [
    (np.zeros((4, 5)), np.zeros((2, 2, 2)), np.float32, TypeError, "dtype must be uint8 or uint16, got float32"),
    (np.zeros((4, 5, 1)), np.zeros((2, 2, 2)), np.uint8, ValueError,
     r"y must be a 2-D \(H, W\) luminance image, got shape \(4, 5, 1\)"),
    (np.zeros((4, 5)), np.zeros((2, 2, 3)), np.uint8, ValueError,
     r"uv must have shape \(h, w, 2\) with h, w >= 1, got \(2, 2, 3\)"),
    (np.zeros((4, 5)), np.zeros((0, 2, 2)), np.uint8, ValueError, r"got \(0, 2, 2\)"),
    (np.full((4, 5), 1.5), np.zeros((2, 2, 2)), np.uint8, ValueError,
     r"y must lie in \[0, 1\], got range \[1.5, 1.5\]"),
    (np.full((4, 5), np.nan), np.zeros((2, 2, 2)), np.uint8, ValueError, r"y must lie in \[0, 1\]"),
    (np.zeros((4, 5)), np.full((2, 2, 2), np.inf), np.uint8, ValueError, "uv must be finite"),
])
def test_compose_exception(y, uv, dtype, error, match):
    with pytest.raises(error, match=match):
        compose(y, uv, dtype)


@pytest.mark.parametrize("n_in, n_out", [(9, 67), (13, 13), (1, 5), (30, 29), (2, 301)])
def test_linear_taps_unit(n_in, n_out):
    # The taps reproduce OpenCV's INTER_LINEAR along one axis (a column resized by cv2.resize).
    import cv2

    column = np.random.default_rng(n_in).random((n_in, 1), dtype=np.float32)
    below, above, weight = _linear_taps(n_in, n_out)
    ours = column[below, 0] * (1 - weight) + column[above, 0] * weight
    np.testing.assert_allclose(ours, cv2.resize(column, (1, n_out), interpolation=cv2.INTER_LINEAR)[:, 0],
                               rtol=0, atol=3e-6)
