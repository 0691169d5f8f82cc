"""Tests for deepcolor.features (patch and DAISY descriptors, and their registry)."""

import inspect

import cv2
import numpy as np
import pytest
from skimage.feature import daisy

from deepcolor.features import (
    DAISY_BACKENDS,
    FEATURES,
    compute_features,
    daisy_features,
    feature_dim,
    patch_features,
)
from deepcolor.features.config import FeatureConfig

H, W = 13, 9  # odd, non-square: a swapped axis cannot pass
FLOATS = [np.float32, np.float64]
PARAMS = {
    "patch_size": 7, "daisy_radius": 4, "daisy_rings": 1, "daisy_histograms": 3,
    "daisy_orientations": 8, "daisy_backend": "skimage", "daisy_normalization": "l1",
}


def _gray(rng, shape, dtype=np.float64):
    """A luminance image in [0, 1] with structure at several scales."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    gray = 0.5 + 0.3 * np.sin(rows / 2.3) * np.cos(cols / 1.7) + 0.15 * rng.random(shape)
    return np.clip(gray, 0.0, 1.0).astype(dtype)


# --- patch_features -----------------------------------------------------------------------------


@pytest.mark.parametrize("size, shape", [(7, (H, W)), (7, (W, H)), (3, (H, W)), (1, (2, 3))])
def test_patch_features_shape(rng, size, shape):
    assert patch_features(_gray(rng, shape), size=size).shape == shape + (size * size,)


@pytest.mark.parametrize("dtype", FLOATS)
def test_patch_features_dtype(rng, dtype):
    assert patch_features(_gray(rng, (H, W), dtype)).dtype == np.float32


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size", [1, 3, 7])
def test_patch_features_invariant_centre(rng, tol, dtype, size):
    gray = _gray(rng, (H, W), dtype)
    out = patch_features(gray, size=size)
    np.testing.assert_allclose(out[..., size * size // 2], gray, **tol(np.float32))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size", [3, 7])
def test_patch_features_unit(rng, tol, dtype, size):
    # Golden: the border from cv2.copyMakeBorder(gray, h, h, h, h, cv2.BORDER_REFLECT_101)
    # (dcb|abcd|cba, what np.pad calls 'reflect'), then each row-major window by slicing.
    gray = _gray(rng, (H, W), dtype)
    h = size // 2
    padded = cv2.copyMakeBorder(gray, h, h, h, h, cv2.BORDER_REFLECT_101)
    expected = np.empty((H, W, size * size))
    for i in range(H):
        for j in range(W):
            expected[i, j] = padded[i : i + size, j : j + size].ravel()
    out = patch_features(gray, size=size)
    np.testing.assert_allclose(out, expected, **tol(np.float32))
    # Spot check the corner by hand: offset (-1, -1) of pixel (0, 0) mirrors to pixel (1, 1).
    assert out[0, 0, (h - 1) * size + (h - 1)] == np.float32(gray[1, 1])


@pytest.mark.parametrize(
    "gray, size, error, match",
    [
        (np.full((H, W), 0.5), 4, ValueError, r"patch size must be a positive odd int, got 4"),
        (np.full((H, W), 0.5), 0, ValueError, r"patch size must be a positive odd int, got 0"),
        (np.full((H, W), 0.5), -3, ValueError, r"patch size must be a positive odd int, got -3"),
        (np.full((H, W), 0.5), 7.0, ValueError, r"patch size must be a positive odd int, got 7\.0"),
        (np.full((H, W), 0.5), True, ValueError,
         r"patch size must be a positive odd int, got True"),
        (np.full((3, W), 0.5), 7, ValueError,
         r"patch size 7 needs an image of at least 4 rows and columns, got shape \(3, 9\)"),
        (np.full((H, 2), 0.5), 5, ValueError,
         r"patch size 5 needs an image of at least 3 rows and columns, got shape \(13, 2\)"),
        (np.full((H, W), 128, np.uint8), 7, TypeError,
         r"gray must be float32 or float64 in \[0, 1\], got dtype uint8"),
        (np.full((H, W, 1), 0.5), 7, ValueError,
         r"gray must be a 2-D \(H, W\) luminance image, got shape \(13, 9, 1\)"),
        (np.full((H, W, 3), 0.5), 7, ValueError, r"got shape \(13, 9, 3\)"),
        (np.zeros((0, W)), 7, ValueError, r"gray must not be empty, got shape \(0, 9\)"),
        (np.linspace(-0.25, 1.0, H * W).reshape(H, W), 7, ValueError,
         r"gray values must lie in \[0, 1\], got range \[-0\.25, 1\]"),
        (np.linspace(0.0, 2.5, H * W).reshape(H, W), 7, ValueError,
         r"gray values must lie in \[0, 1\], got range \[0, 2\.5\]"),
        (np.full((H, W), np.nan), 7, ValueError,
         r"gray values must lie in \[0, 1\], got range \[nan"),
    ],
)
def test_patch_features_exception(gray, size, error, match):
    with pytest.raises(error, match=match):
        patch_features(gray, size=size)


# --- daisy_features -----------------------------------------------------------------------------

DH, DW, DR = 23, 19, 4  # small enough to be fast, large enough for radius 4


@pytest.mark.parametrize("backend", DAISY_BACKENDS)
@pytest.mark.parametrize("shape", [(DH, DW), (DW, DH)])
def test_daisy_features_shape(rng, backend, shape):
    out = daisy_features(_gray(rng, shape), radius=DR, backend=backend)
    assert out.shape == shape + (32,)


def test_daisy_features_shape_layout(rng):
    # (rings * histograms + 1) * orientations values per pixel
    out = daisy_features(_gray(rng, (DH, DW)), radius=DR, rings=2, histograms=4, orientations=6)
    assert out.shape == (DH, DW, (2 * 4 + 1) * 6)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("backend", DAISY_BACKENDS)
def test_daisy_features_dtype(rng, dtype, backend):
    out = daisy_features(_gray(rng, (DH, DW), dtype), radius=DR, backend=backend)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, radius", [((23, 19), 2), ((33, 29), 4)])
def test_daisy_features_unit(rng, tol, dtype, shape, radius):
    # Golden: skimage.feature.daisy(gray, step=1, radius=r, rings=1, histograms=3,
    # orientations=8) on the unpadded image, whose element [i, j] is pixel (i + r, j + r).
    # Padding changes only pixels near the border: scikit-image takes forward differences
    # (the last row and column differ), smooths with a Gaussian of sigma r / 2 truncated at
    # int(4 sigma + 0.5) pixels, and reads the smoothed maps up to r pixels away. So pixels at
    # least m = r + int(2 r + 0.5) from the top/left and m + 1 from the bottom/right must agree.
    gray = _gray(rng, shape, dtype)
    out = daisy_features(gray, radius=radius, backend="skimage")
    ref = daisy(gray.astype(np.float32), step=1, radius=radius, rings=1, histograms=3,
                orientations=8)  # (H - 2r, W - 2r, 32)
    assert ref.shape == (shape[0] - 2 * radius, shape[1] - 2 * radius, 32)
    m = radius + int(2 * radius + 0.5)
    rows, cols = slice(m, shape[0] - 1 - m), slice(m, shape[1] - 1 - m)
    interior = out[rows, cols]
    assert interior.size > 0
    expected = ref[m - radius : shape[0] - 1 - m - radius, m - radius : shape[1] - 1 - m - radius]
    np.testing.assert_allclose(interior, expected, **tol(np.float32))


@pytest.mark.parametrize("normalization", ["l1", "l2", "daisy", "off"])
@pytest.mark.parametrize("shape, radius, rings, histograms, orientations",
                         [((40, 52), 5, 1, 3, 8), ((33, 29), 4, 2, 4, 6), ((20, 24), 3, 3, 2, 4)])
def test_daisy_features_skimage_backend_equals_skimage_everywhere(rng, normalization, shape, radius, rings,
                                                                  histograms, orientations):
    """The vectorised backend is scikit-image's DAISY of the reflect-padded image, at every pixel."""
    gray = _gray(rng, shape, np.float32)
    out = daisy_features(gray, radius=radius, rings=rings, histograms=histograms, orientations=orientations,
                         backend="skimage", normalization=normalization)
    ref = daisy(np.pad(gray, radius, mode="reflect"), step=1, radius=radius, rings=rings, histograms=histograms,
                orientations=orientations, normalization=normalization)
    assert out.shape == ref.shape == shape + ((rings * histograms + 1) * orientations,)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["skimage", "opencv"])
def test_daisy_features_invariant_normalisation(rng, backend):
    # normalization='l1' (the default) makes each whole descriptor sum to 1 (not each
    # histogram); 'daisy' (OpenCV's NRM_PARTIAL) gives each 8-bin histogram unit L2 norm;
    # 'l2' the whole descriptor; 'off' leaves raw magnitudes, which scale with contrast.
    gray = _gray(rng, (DH, DW))
    l1 = daisy_features(gray, radius=DR, backend=backend)
    np.testing.assert_allclose(l1.sum(-1), 1.0, atol=1e-5)
    assert l1.min() >= 0
    per_hist = daisy_features(gray, radius=DR, backend=backend, normalization="daisy")
    np.testing.assert_allclose(np.linalg.norm(per_hist.reshape(DH, DW, 4, 8), axis=-1), 1.0, atol=1e-4)
    whole = daisy_features(gray, radius=DR, backend=backend, normalization="l2")
    np.testing.assert_allclose(np.linalg.norm(whole, axis=-1), 1.0, atol=1e-4)
    raw = daisy_features(gray, radius=DR, backend=backend, normalization="off")
    raw_half = daisy_features(gray * 0.5, radius=DR, backend=backend, normalization="off")
    ratio = raw_half.sum() / raw.sum()
    assert 0.4 < ratio < 0.6, ratio  # halving the contrast about halves the raw gradients


def test_daisy_features_exception_normalization(rng):
    with pytest.raises(ValueError, match=r"DAISY normalization must be one of \('l1', 'l2', 'daisy', 'off'\), got 'l3'"):
        daisy_features(_gray(rng, (DH, DW)), radius=DR, normalization="l3")


@pytest.mark.parametrize("backend", ["skimage", "opencv"])
def test_daisy_features_invariant_border(rng, backend):
    # Every pixel, the border included, gets a descriptor with no empty histogram.
    gray = _gray(rng, (DH, DW))
    out = daisy_features(gray, radius=DR, backend=backend)
    norms = np.linalg.norm(out.reshape(DH, DW, 4, 8), axis=-1)  # (H, W, 4)
    assert norms.min() > 0


_G = np.full((DH, DW), 0.5)


@pytest.mark.parametrize(
    "gray, kwargs, error, match",
    [
        (_G, {"radius": 0}, ValueError, r"DAISY radius must be a positive int, got 0"),
        (_G, {"radius": 4.0}, ValueError, r"DAISY radius must be a positive int, got 4\.0"),
        (_G, {"rings": 0}, ValueError, r"DAISY rings must be a positive int, got 0"),
        (_G, {"histograms": True}, ValueError,
         r"DAISY histograms must be a positive int, got True"),
        (_G, {"orientations": -8}, ValueError,
         r"DAISY orientations must be a positive int, got -8"),
        (_G, {"backend": "cv2"}, ValueError,
         r"DAISY backend must be one of \('skimage', 'opencv'\), got 'cv2'"),
        (np.full((DH, 4), 0.5), {"radius": 4}, ValueError,
         r"DAISY radius 4 needs an image of more than 4 rows and columns, got shape \(23, 4\)"),
        (np.full((1, DH, DW), 0.5), {}, ValueError,
         r"gray must be a 2-D \(H, W\) luminance image, got shape \(1, 23, 19\)"),
        (np.full((DH, DW), 1, np.int64), {}, TypeError, r"got dtype int64"),
        (_G + 1.0, {}, ValueError, r"gray values must lie in \[0, 1\], got range \[1\.5, 1\.5\]"),
    ],
)
def test_daisy_features_exception(gray, kwargs, error, match):
    with pytest.raises(error, match=match):
        daisy_features(gray, **kwargs)


# --- registry -----------------------------------------------------------------------------------


def test_feature_dim_unit():
    assert feature_dim(["patch"], PARAMS) == 49
    assert feature_dim(["daisy"], PARAMS) == 32
    assert feature_dim(["patch", "daisy"], PARAMS) == 81
    assert feature_dim(["daisy"], {**PARAMS, "daisy_rings": 2, "daisy_histograms": 4}) == 72
    assert feature_dim(["patch"], {**PARAMS, "patch_size": 5}) == 25
    assert set(FEATURES) == {"patch", "daisy", "semantic"}


@pytest.mark.parametrize("names", [("patch",), ("daisy",), ("patch", "daisy"), ("daisy", "patch")])
def test_compute_features_shape(rng, names):
    out = compute_features(_gray(rng, (DH, DW)), names, PARAMS)
    assert out.shape == (DH, DW, feature_dim(names, PARAMS))
    assert out.dtype == np.float32


def test_compute_features_unit(rng):
    # Concatenated along the last axis in the order the names are given.
    gray = _gray(rng, (DH, DW))
    patch = patch_features(gray, size=7)
    desc = daisy_features(gray, radius=4, backend="skimage")
    np.testing.assert_array_equal(compute_features(gray, ["patch", "daisy"], PARAMS),
                                  np.concatenate([patch, desc], axis=-1))
    np.testing.assert_array_equal(compute_features(gray, ("daisy", "patch"), PARAMS),
                                  np.concatenate([desc, patch], axis=-1))
    other = {**PARAMS, "patch_size": 3, "daisy_backend": "opencv"}
    np.testing.assert_array_equal(
        compute_features(gray, ["patch", "daisy"], other),
        np.concatenate([patch_features(gray, size=3),
                        daisy_features(gray, radius=4, backend="opencv")], axis=-1),
    )


@pytest.mark.parametrize(
    "names, match",
    [
        ([], r"at least one feature name is needed"),
        (["patch", "hog"], r"unknown feature\(s\) \['hog'\]; known: \['daisy', 'patch', 'semantic'\]"),
        (["patch", "daisy", "patch"],
         r"feature names must not repeat, got \['patch', 'daisy', 'patch'\]"),
    ],
)
def test_compute_features_exception(rng, names, match):
    with pytest.raises(ValueError, match=match):
        feature_dim(names, PARAMS)
    with pytest.raises(ValueError, match=match):
        compute_features(_gray(rng, (DH, DW)), names, PARAMS)


def test_compute_features_exception_gray():
    with pytest.raises(ValueError, match=r"gray must be a 2-D \(H, W\) luminance image"):
        compute_features(np.full((DH, DW, 3), 0.5), ["patch"], PARAMS)


def test_compute_features_exception_bare_string(rng):
    gray = rng.random((13, 9))
    with pytest.raises(TypeError, match=r"got the string 'patch'; write \('patch',\)"):
        compute_features(gray, "patch", {"patch_size": 3})


def test_feature_functions_defaults_are_feature_config(rng):
    # The Python API computes the features the command line does: FeatureConfig's settings.
    cfg = FeatureConfig()
    gray = _gray(rng, (DH, DW))
    np.testing.assert_array_equal(
        daisy_features(gray),
        daisy_features(gray, cfg.daisy_radius, cfg.daisy_rings, cfg.daisy_histograms, cfg.daisy_orientations,
                       cfg.daisy_backend, cfg.daisy_normalization))
    daisy = inspect.signature(daisy_features).parameters
    assert daisy["radius"].default == cfg.daisy_radius == 5
    assert [daisy[n].default for n in ("rings", "histograms", "orientations", "backend", "normalization")] == \
        [cfg.daisy_rings, cfg.daisy_histograms, cfg.daisy_orientations, cfg.daisy_backend, cfg.daisy_normalization]
    assert inspect.signature(patch_features).parameters["size"].default == cfg.patch_size == 7
