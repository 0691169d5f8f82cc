"""Tests for deepcolor.refine (joint bilateral refinement of the chrominance)."""

import inspect

import numpy as np
import pytest

import deepcolor.refine.bilateral as bilateral
from deepcolor.refine import joint_bilateral_refine
from deepcolor.refine.config import RefineConfig

H, W = 13, 9  # odd, non-square: a swapped axis cannot pass


def _reference(uv, guide, radius, sigma_color, sigma_space):
    """Joint bilateral filter evaluated from its definition, in float64 numpy.

    out(p) = sum_q w(p, q) uv(q) / sum_q w(p, q) over the disc |p - q| <= radius, with
    w(p, q) = exp(-|p - q|^2 / (2 sigma_space^2))
            * exp(-(guide(p) - guide(q))^2 / (2 sigma_color^2))
    (Petschnigg et al. 2004; Tomasi & Manduchi 1998 with the range term on the guide).
    ``sigma_color=None`` drops the range term: a circular Gaussian blur. Borders are
    reflect-101 (``np.pad(mode='reflect')`` is ``dcb|abcd|cba``, as cv2.BORDER_REFLECT_101).
    """
    uv = np.asarray(uv, dtype=np.float64)
    guide = np.asarray(guide, dtype=np.float64)
    height, width = guide.shape
    r = radius
    guide_pad = np.pad(guide, r, mode="reflect")  # (H + 2r, W + 2r)
    uv_pad = np.pad(uv, ((r, r), (r, r), (0, 0)), mode="reflect")  # (H + 2r, W + 2r, 2)
    num = np.zeros(uv.shape)
    den = np.zeros(guide.shape)
    for di in range(-r, r + 1):
        for dj in range(-r, r + 1):
            if di * di + dj * dj > r * r:
                continue  # outside the circular window
            rows, cols = slice(r + di, r + di + height), slice(r + dj, r + dj + width)
            w = np.full(guide.shape, np.exp(-(di * di + dj * dj) / (2 * sigma_space**2)))
            if sigma_color is not None:
                w = w * np.exp(-((guide_pad[rows, cols] - guide) ** 2) / (2 * sigma_color**2))
            num += w[..., None] * uv_pad[rows, cols]
            den += w
    return num / den[..., None]


def _smooth_guide(rng, shape):
    """A guide in [0, 1] with both smooth variation and a few sharp jumps."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    guide = 0.5 + 0.3 * np.sin(rows / 3.0) * np.cos(cols / 2.0)
    guide += 0.1 * rng.random(shape)
    guide[:, shape[1] // 2 :] += 0.1  # a step edge
    return np.clip(guide, 0.0, 1.0)


@pytest.mark.parametrize("shape", [(H, W), (W, H), (1, 7), (64, 33)])
def test_joint_bilateral_refine_shape(rng, shape):
    uv = rng.uniform(-0.4, 0.4, shape + (2,))
    out = joint_bilateral_refine(uv, rng.random(shape))
    assert out.shape == shape + (2,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_joint_bilateral_refine_dtype(rng, dtype):
    uv = rng.uniform(-0.4, 0.4, (H, W, 2)).astype(dtype)
    out = joint_bilateral_refine(uv, rng.random((H, W)).astype(dtype))
    assert out.dtype == np.float32
    assert out.flags.c_contiguous


def _valid():
    rng = np.random.default_rng(0)
    return rng.uniform(-0.4, 0.4, (H, W, 2)), rng.random((H, W))


_UV, _GUIDE = _valid()


def _with(a, index, value):
    a = a.copy()
    a[index] = value
    return a


@pytest.mark.parametrize(
    "uv, guide, error, match",
    [
        (_UV[..., 0], _GUIDE, ValueError, r"uv must have shape \(H, W, 2\), got \(13, 9\)"),
        (np.zeros((H, W, 3)), _GUIDE, ValueError,
         r"uv must have shape \(H, W, 2\), got \(13, 9, 3\)"),
        (_UV, _GUIDE.T, ValueError,
         r"guide must have shape \(H, W\) = \(13, 9\) to match uv, got \(9, 13\)"),
        (_UV, _GUIDE[..., None], ValueError, r"guide must have shape .* got \(13, 9, 1\)"),
        (np.zeros((0, 4, 2)), np.zeros((0, 4)), ValueError,
         r"uv must not be empty, got shape \(0, 4, 2\)"),
        (_UV.astype(np.int32), _GUIDE, TypeError,
         r"uv must be float32 or float64, got dtype int32"),
        (_UV, (_GUIDE * 255).astype(np.uint8), TypeError,
         r"guide must be float32 or float64, got dtype uint8"),
        (_with(_UV, (2, 3, 1), np.nan), _GUIDE, ValueError,
         r"uv must be finite, got 1 NaN or infinite"),
        (_UV, _with(_GUIDE, (0, 0), np.inf), ValueError,
         r"guide must be finite, got 1 NaN or infinite"),
    ],
)
def test_joint_bilateral_refine_exception(uv, guide, error, match):
    with pytest.raises(error, match=match):
        joint_bilateral_refine(uv, guide)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"diameter": 0}, r"diameter must be an int >= 3, got 0"),
        ({"diameter": -5}, r"diameter must be an int >= 3, got -5"),
        ({"diameter": 2}, r"diameter must be an int >= 3, got 2"),
        ({"diameter": 9.0}, r"diameter must be an int >= 3, got 9\.0"),
        ({"diameter": True}, r"diameter must be an int >= 3, got True"),
        ({"sigma_color": 0}, r"sigma_color must be a positive finite number, got 0"),
        ({"sigma_color": -0.1}, r"sigma_color must be .*, got -0\.1"),
        ({"sigma_color": np.inf}, r"sigma_color must be .*, got inf"),
        ({"sigma_color": "0.1"}, r"sigma_color must be .*, got '0\.1'"),
        ({"sigma_space": 0.0}, r"sigma_space must be a positive finite number, got 0\.0"),
        ({"sigma_space": np.nan}, r"sigma_space must be .*, got nan"),
    ],
)
def test_joint_bilateral_refine_exception_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        joint_bilateral_refine(_UV, _GUIDE, **kwargs)


def test_joint_bilateral_refine_exception_no_ximgproc(monkeypatch):
    # What a user sees with opencv-python (no contrib) installed instead of the contrib wheel.
    monkeypatch.setattr(bilateral, "_XIMGPROC", None)
    with pytest.raises(ImportError, match=r"cv2\.ximgproc.*install opencv-contrib-python-headless"):
        joint_bilateral_refine(_UV, _GUIDE)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("diameter, sigma_color, sigma_space",
                         [(5, 0.1, 3.0), (9, 0.05, 2.0), (4, 0.3, 1.0)])
def test_joint_bilateral_refine_unit(rng, tol, dtype, diameter, sigma_color, sigma_space):
    # Golden: _reference above, the filter's definition evaluated directly in float64 numpy.
    # OpenCV tabulates the range kernel (4096 bins, linear interpolation) and sums in float32,
    # hence the float32 tolerance, which the float64 reference is compared at.
    guide = _smooth_guide(rng, (H, W)).astype(dtype)
    uv = rng.uniform(-0.4, 0.4, (H, W, 2)).astype(dtype)
    out = joint_bilateral_refine(uv, guide, diameter=diameter, sigma_color=sigma_color,
                                 sigma_space=sigma_space)
    expected = _reference(uv, guide, diameter // 2, sigma_color, sigma_space)
    np.testing.assert_allclose(out, expected, **tol(np.float32))
    assert np.abs(out - uv).max() > 1e-2  # it did filter


def test_joint_bilateral_refine_unit_small_image(rng, tol):
    # Window wider than the image: reflect-101 keeps mirroring, as np.pad(mode='reflect') does.
    guide = rng.random((3, 2))
    uv = rng.uniform(-0.4, 0.4, (3, 2, 2))
    out = joint_bilateral_refine(uv, guide, diameter=9, sigma_color=0.3, sigma_space=3.0)
    np.testing.assert_allclose(out, _reference(uv, guide, 4, 0.3, 3.0), **tol(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_joint_bilateral_refine_invariant_constant_chroma(rng, tol, dtype):
    guide = _smooth_guide(rng, (H, W)).astype(dtype)
    uv = np.empty((H, W, 2), dtype=dtype)
    uv[...] = (0.123, -0.321)
    out = joint_bilateral_refine(uv, guide, diameter=7, sigma_color=0.05)
    np.testing.assert_allclose(out, uv, **tol(np.float32))


@pytest.mark.parametrize("guide_kind", ["flat", "nearly_flat"])
@pytest.mark.parametrize("diameter, sigma_space", [(9, 3.0), (7, 1.5), (6, 10.0)])
def test_joint_bilateral_refine_invariant_flat_guide(rng, tol, guide_kind, diameter, sigma_space):
    # With a flat guide every range weight is 1, so the joint filter is a normalised spatial
    # Gaussian on the disc |offset| <= diameter // 2 (reference: _reference with no range term).
    # "flat": exactly constant, where OpenCV would use a square window and we do not;
    # "nearly_flat": a 2e-6 ramp, so OpenCV's own bilateral code runs.
    guide = np.full((H, W), 0.5)
    if guide_kind == "nearly_flat":
        guide = guide + 2e-6 * np.linspace(0, 1, H * W).reshape(H, W)
    uv = rng.uniform(-0.4, 0.4, (H, W, 2))
    out = joint_bilateral_refine(uv, guide, diameter=diameter, sigma_color=0.1,
                                 sigma_space=sigma_space)
    np.testing.assert_allclose(out, _reference(uv, guide, diameter // 2, None, sigma_space),
                               **tol(np.float32))


@pytest.mark.parametrize("guide_kind", ["flat", "nearly_flat"])
def test_joint_bilateral_refine_invariant_circular_window(guide_kind):
    # An impulse in U spreads to exactly the pixels within distance diameter // 2 = 4 of it:
    # offset (4, 0) is reached, offsets (4, 1) (distance 4.12) and (3, 3) (4.24) are not,
    # although a square 9 x 9 window would contain them.
    size = 15
    guide = np.full((size, size), 0.5)
    if guide_kind == "nearly_flat":
        guide[0, 0] += 1e-5
    uv = np.zeros((size, size, 2))
    c = size // 2
    uv[c, c, 0] = 1.0
    out = joint_bilateral_refine(uv, guide, diameter=9, sigma_color=0.1, sigma_space=100.0)
    di, dj = np.mgrid[0:size, 0:size] - c
    inside = di**2 + dj**2 <= 16
    assert np.all(out[inside, 0] > 0)
    assert np.all(out[~inside, 0] == 0)
    assert inside.sum() == 49  # integer offsets in the disc of radius 4 (vs 81 in the square)
    # With sigma_space >> radius the spatial weights are nearly equal: about 1/49 each.
    np.testing.assert_allclose(out[inside, 0], 1 / 49, rtol=1e-3)


def test_joint_bilateral_refine_invariant_edge_preserving():
    # Guide: a vertical step edge from 0.2 to 0.8 between columns 3 and 4. Chroma: one colour
    # left of the edge, another right of it. The joint filter keeps them apart (range weight
    # across the edge exp(-0.6^2 / (2 * 0.1^2)) = 1.5e-8); a flat guide mixes them at the edge.
    guide = np.full((H, W), 0.2)
    guide[:, 4:] = 0.8
    uv = np.empty((H, W, 2))
    uv[:, :4] = (0.2, -0.1)
    uv[:, 4:] = (-0.2, 0.3)
    kwargs = dict(diameter=9, sigma_color=0.1, sigma_space=3.0)
    joint = joint_bilateral_refine(uv, guide, **kwargs)
    assert np.abs(joint - uv).max() < 1e-5
    blurred = joint_bilateral_refine(uv, np.full((H, W), 0.5), **kwargs)
    assert np.abs(blurred[:, 3:5] - uv[:, 3:5]).min() > 0.05


def test_joint_bilateral_refine_defaults_are_refine_config(rng):
    # The Python API refines as the command line does: RefineConfig's window and sigmas.
    cfg = RefineConfig()
    guide = _smooth_guide(rng, (H, W))
    uv = rng.uniform(-0.4, 0.4, (H, W, 2))
    np.testing.assert_array_equal(
        joint_bilateral_refine(uv, guide),
        joint_bilateral_refine(uv, guide, cfg.diameter, cfg.sigma_color, cfg.sigma_space))
    defaults = inspect.signature(joint_bilateral_refine).parameters
    assert (defaults["diameter"].default, defaults["sigma_color"].default, defaults["sigma_space"].default) == \
        (cfg.diameter, cfg.sigma_color, cfg.sigma_space) == (15, 0.05, 6.0)
