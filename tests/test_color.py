"""Tests for deepcolor.color (BT.601 YUV as in Cheng et al. 2015)."""

import cv2
import numpy as np
import pytest

from deepcolor.color import (
    U_MAX,
    V_MAX,
    combine_luma_chroma,
    rgb_to_gray_u8,
    rgb_to_luma,
    rgb_to_yuv,
    to_uint8,
    yuv_to_rgb,
)

H, W = 13, 9  # odd, non-square: a swapped axis cannot pass
FLOATS = [np.float32, np.float64]


# --- rgb_to_yuv / yuv_to_rgb / rgb_to_luma ---------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS + [np.uint8, np.uint16])
def test_rgb_to_yuv_shape(dtype):
    rgb = np.zeros((H, W, 3), dtype=dtype)
    assert rgb_to_yuv(rgb).shape == (H, W, 3)
    assert rgb_to_luma(rgb).shape == (H, W)


@pytest.mark.parametrize(
    "dtype, expected", [(np.float32, np.float32), (np.float64, np.float64),
                        (np.uint8, np.float32), (np.uint16, np.float32)]
)
def test_rgb_to_yuv_dtype(dtype, expected):
    rgb = np.zeros((H, W, 3), dtype=dtype)
    assert rgb_to_yuv(rgb).dtype == expected
    assert rgb_to_luma(rgb).dtype == expected
    assert yuv_to_rgb(rgb_to_yuv(rgb)).dtype == expected


@pytest.mark.parametrize("dtype", FLOATS)
def test_rgb_to_yuv_roundtrip(rng, tol, dtype):
    rgb = rng.random((H, W, 3)).astype(dtype)
    np.testing.assert_allclose(yuv_to_rgb(rgb_to_yuv(rgb)), rgb, **tol(dtype))
    # and the other way, from YUV values inside the ranges (out-of-gamut colours included)
    yuv = np.stack([rng.random((H, W)), rng.uniform(-U_MAX, U_MAX, (H, W)),
                    rng.uniform(-V_MAX, V_MAX, (H, W))], axis=-1).astype(dtype)
    np.testing.assert_allclose(rgb_to_yuv(yuv_to_rgb(yuv)), yuv, **tol(dtype))


def test_rgb_to_yuv_roundtrip_uint(tol):
    u8 = np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3)
    np.testing.assert_allclose(yuv_to_rgb(rgb_to_yuv(u8)), u8 / 255.0, **tol(np.float32))
    u16 = (u8.astype(np.uint16) * 257)  # 257 * v / 65535 == v / 255
    np.testing.assert_allclose(rgb_to_yuv(u16), rgb_to_yuv(u8), **tol(np.float32))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "rgb",
    [(1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0),
     (0.25, 0.5, 0.75)],
)
def test_rgb_to_yuv_unit(tol, dtype, rgb):
    # BT.601 (analogue): Y = 0.299 R + 0.587 G + 0.114 B, U = 0.492 (B - Y), V = 0.877 (R - Y)
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    expected = np.array([y, 0.492 * (b - y), 0.877 * (r - y)])
    image = np.full((H, W, 3), rgb, dtype=dtype)
    out = rgb_to_yuv(image)
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), **tol(dtype))
    np.testing.assert_allclose(rgb_to_luma(image), np.full((H, W), y), **tol(dtype))


def test_rgb_to_yuv_unit_white_is_grey():
    yuv = rgb_to_yuv(np.full((H, W, 3), 255, dtype=np.uint8))
    np.testing.assert_allclose(yuv[..., 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(yuv[..., 1:], 0.0, atol=1e-6)


def test_rgb_to_yuv_unit_extremes():
    # The documented chroma ranges are reached by blue (U) and red (V).
    primaries = np.eye(3, dtype=np.float64)[None]  # (1, 3, 3): red, green, blue
    yuv = rgb_to_yuv(primaries)[0]
    assert yuv[2, 1] == pytest.approx(U_MAX, abs=1e-3)
    assert yuv[0, 2] == pytest.approx(V_MAX, abs=1e-3)


def test_rgb_to_yuv_unit_opencv(rng, tol):
    # Golden: cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV) on float32 uses the same BT.601
    # coefficients (0.299, 0.587, 0.114; 0.492, 0.877) with U, V offset by 0.5.
    rgb = rng.random((H, W, 3)).astype(np.float32)
    expected = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV) - np.array([0.0, 0.5, 0.5], np.float32)
    np.testing.assert_allclose(rgb_to_yuv(rgb), expected, **tol(np.float32))


def test_rgb_to_yuv_exception():
    with pytest.raises(ValueError, match=r"rgb must have shape \(H, W, 3\), got \(13, 9\)"):
        rgb_to_yuv(np.zeros((H, W)))
    with pytest.raises(ValueError, match=r"rgb must have shape \(H, W, 3\), got \(13, 9, 4\)"):
        rgb_to_luma(np.zeros((H, W, 4)))
    with pytest.raises(TypeError,
                       match=r"image dtype must be uint8, uint16 or floating, got int32"):
        rgb_to_yuv(np.zeros((H, W, 3), dtype=np.int32))
    with pytest.raises(ValueError, match=r"yuv must have shape \(H, W, 3\), got \(3,\)"):
        yuv_to_rgb(np.zeros(3))
    with pytest.raises(TypeError, match=r"yuv must be floating, got uint8"):
        yuv_to_rgb(np.zeros((H, W, 3), dtype=np.uint8))


# --- rgb_to_gray_u8 ---------------------------------------------------------------------------


def test_rgb_to_gray_u8_shape_dtype(rng):
    out = rgb_to_gray_u8(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    assert out.shape == (H, W)
    assert out.dtype == np.uint8


def test_rgb_to_gray_u8_unit(rng):
    # Golden: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY). OpenCV rounds in 14-bit fixed point
    # (weights 4899, 9617, 1868 / 16384), so it may differ by one level where the exact
    # luma is within a hair of a rounding tie (x.5); everywhere else the two must agree.
    rgb = rng.integers(0, 256, (128, 97, 3), dtype=np.uint8)
    rgb[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                  [128, 128, 128], [1, 2, 3], [254, 1, 127]]
    ours = rgb_to_gray_u8(rgb).astype(int)
    expected = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(int)
    exact = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    near_tie = np.abs(exact - np.floor(exact) - 0.5) < 0.005
    assert np.abs(ours - expected).max() <= 1
    np.testing.assert_array_equal(ours[~near_tie], expected[~near_tie])
    np.testing.assert_array_equal(ours[0, :6], [0, 255, 76, 150, 29, 128])


def test_rgb_to_gray_u8_exception():
    with pytest.raises(TypeError, match=r"rgb must be uint8, got float32"):
        rgb_to_gray_u8(np.zeros((H, W, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"rgb must have shape \(H, W, 3\), got \(13, 9\)"):
        rgb_to_gray_u8(np.zeros((H, W), dtype=np.uint8))


# --- combine_luma_chroma / to_uint8 ------------------------------------------------------------


def _luma_and_wild_chroma(rng, dtype):
    """Random luminance including the extremes 0 and 1, and chroma far out of gamut."""
    y = rng.random((H, W)).astype(dtype)
    y[0, 0], y[0, 1] = 0.0, 1.0
    uv = rng.uniform(-2.0, 2.0, (H, W, 2)).astype(dtype)
    return y, uv


@pytest.mark.parametrize("dtype", FLOATS)
def test_combine_luma_chroma_shape_dtype(rng, dtype):
    y, uv = _luma_and_wild_chroma(rng, dtype)
    out = combine_luma_chroma(y, uv)
    assert out.shape == (H, W, 3)
    assert out.dtype == np.float32


@pytest.mark.parametrize("dtype", FLOATS)
def test_combine_luma_chroma_invariant_luma(rng, dtype):
    y, uv = _luma_and_wild_chroma(rng, dtype)
    out = combine_luma_chroma(y, uv)
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(rgb_to_luma(out), y, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", FLOATS)
def test_combine_luma_chroma_invariant_hue(rng, dtype):
    # Out-of-gamut chroma is scaled towards grey, never rotated: out's chroma = s * uv with
    # s in [0, 1], and s is the largest such factor, so a clipped pixel touches 0 or 1.
    y, uv = _luma_and_wild_chroma(rng, dtype)
    out_uv = rgb_to_yuv(combine_luma_chroma(y, uv))[..., 1:].astype(np.float64)
    uv = uv.astype(np.float64)
    cross = out_uv[..., 0] * uv[..., 1] - out_uv[..., 1] * uv[..., 0]
    np.testing.assert_allclose(cross, 0.0, atol=1e-5)
    s = (out_uv * uv).sum(-1) / (uv * uv).sum(-1)
    assert s.min() >= -1e-6 and s.max() <= 1 + 1e-6
    clipped = s < 1 - 1e-4
    assert clipped.sum() > H * W // 2  # the chroma above is mostly out of gamut
    rgb = combine_luma_chroma(y, uv)[clipped]  # (n, 3)
    assert np.all((rgb.min(-1) < 1e-5) | (rgb.max(-1) > 1 - 1e-5))


@pytest.mark.parametrize("dtype", FLOATS)
def test_combine_luma_chroma_roundtrip(rng, tol, dtype):
    # In-gamut chroma comes back unchanged: splitting a colour image and recombining it.
    rgb = rng.uniform(0.02, 0.98, (H, W, 3)).astype(dtype)
    yuv = rgb_to_yuv(rgb)
    np.testing.assert_allclose(combine_luma_chroma(yuv[..., 0], yuv[..., 1:]), rgb,
                               **tol(np.float32))


def test_combine_luma_chroma_unit_to_uint8(rng):
    # After rounding each channel to 8 bits (error <= 0.5 level each, weights summing to 1)
    # the luma moves by at most half a level.
    y, uv = _luma_and_wild_chroma(rng, np.float64)
    u8 = to_uint8(combine_luma_chroma(y, uv))
    assert u8.dtype == np.uint8
    err = np.abs(rgb_to_luma(u8).astype(np.float64) - y) * 255.0
    assert err.max() <= 0.5 + 1e-3


def test_to_uint8_unit():
    x = np.array([[-0.1, 0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.499, 1.0, 1.7]])
    np.testing.assert_array_equal(to_uint8(x), [[0, 0, 0, 2, 2, 127, 255, 255]])  # ties to even


def test_combine_luma_chroma_exception():
    with pytest.raises(ValueError, match=r"y must be \(H, W\) and uv \(H, W, 2\), "
                                         r"got \(13, 9\) and \(9, 13, 2\)"):
        combine_luma_chroma(np.zeros((H, W)), np.zeros((W, H, 2)))
    with pytest.raises(ValueError, match=r"got \(13, 9, 1\) and \(13, 9, 2\)"):
        combine_luma_chroma(np.zeros((H, W, 1)), np.zeros((H, W, 2)))
    with pytest.raises(ValueError, match=r"got \(13, 9\) and \(13, 9, 3\)"):
        combine_luma_chroma(np.zeros((H, W)), np.zeros((H, W, 3)))
