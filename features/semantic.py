"""High-level feature: scene-parser class probabilities (Cheng et al. 2015, Sec. 3.1).

The paper's semantic feature at a pixel is the vector of class probabilities
that a scene parser gives on the *grey* image, smoothed by an edge-preserving
filter guided by the grey image (the parser is unreliable at region
boundaries). The same probabilities give each image a semantic histogram
(the share of each class), which the cluster selector uses.

This module holds the feature itself, whatever parser gives the
probabilities: the guided smoothing, the per-pixel feature and the
histogram. The parsers, their classes and their loading live beside it
(`deepcolor.features.parsers`, `.teacher`, `.cvparser`, `.onnxgraph`,
`.greyparser`, `.deeplab`, `.classprob`, `.labelsets`). A parser is any object with ``class_names`` (or
``classes_``, the same tuple) and ``predict_proba(gray) -> (H, W, K)``.
"""

import cv2
import numpy as np

from ._validate import check_gray

SMOOTHINGS = ("guided", "none")


def smooth_probabilities(prob, guide, radius=8, eps=1e-3):
    """Edge-preserving smoothing of class probabilities guided by the grey image.

    Parameters
    ----------
    prob : ndarray of shape (H, W, K)
        Class probabilities (each pixel sums to 1).
    guide : ndarray of shape (H, W)
        Luminance in [0, 1].
    radius : int, optional
        Window radius of the guided filter, pixels.
    eps : float, optional
        Its regularisation, in squared luminance units: edges whose contrast
        is well above sqrt(eps) are kept.

    Returns
    -------
    smoothed : ndarray of shape (H, W, K), float32
        Non-negative and summing to 1 at every pixel.

    Notes
    -----
    The paper smooths with an edge-preserving filter it does not name; we use
    the guided filter (He et al. 2013, ``cv2.ximgproc.guidedFilter``), which is
    linear in the filtered image and so keeps the sum of the K maps at 1 up to
    clipping of small negative values, renormalised here.

    References
    ----------
    .. [1] K. He, J. Sun, X. Tang, "Guided Image Filtering", IEEE TPAMI 35(6), 2013.
    """
    guide = check_gray(guide)
    prob = np.asarray(prob, np.float32)
    if prob.ndim != 3 or prob.shape[:2] != guide.shape:
        raise ValueError(f"prob must be (H, W, K) with (H, W) = guide's {guide.shape}, got {prob.shape}")
    if not isinstance(radius, (int, np.integer)) or isinstance(radius, bool) or radius < 1:
        raise ValueError(f"radius must be a positive int, got {radius!r}")
    if isinstance(eps, bool) or not (isinstance(eps, (int, float, np.floating)) and 0 < eps < np.inf):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    out = cv2.ximgproc.guidedFilter(guide.astype(np.float32), np.ascontiguousarray(prob),
                                    int(radius), float(eps))
    out = out.reshape(prob.shape)  # a single class comes back as (H, W)
    np.maximum(out, 0.0, out=out)
    out /= np.maximum(out.sum(axis=-1, keepdims=True), np.float32(1e-12))
    return out


def semantic_histogram(prob):
    """Share of each class in an image: the mean of its probabilities over pixels, shape (K,)."""
    prob = np.asarray(prob, np.float32)
    if prob.ndim != 3 or prob.shape[0] * prob.shape[1] == 0:
        raise ValueError(f"prob must be a non-empty (H, W, K) array, got {prob.shape}")
    return prob.reshape(-1, prob.shape[-1]).mean(axis=0)


def semantic_features(gray, parser, smoothing="guided", radius=8, eps=1e-2):
    """The paper's high-level feature: class probabilities of the grey image, smoothed under its guidance.

    Parameters
    ----------
    gray : ndarray of shape (H, W)
        Luminance in [0, 1].
    parser : object with ``predict_proba(gray) -> (H, W, K)``
    smoothing : {"guided", "none"}
        Edge-preserving smoothing of the probability maps guided by `gray`
        (`smooth_probabilities`) or none.
    radius, eps : int, float
        Of the guided filter.

    Returns
    -------
    prob : ndarray of shape (H, W, K), float32
        Summing to 1 at every pixel.
    """
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"smoothing must be one of {SMOOTHINGS}, got {smoothing!r}")
    gray = check_gray(gray)
    prob = np.asarray(parser.predict_proba(gray), np.float32)
    if smoothing == "guided":
        prob = smooth_probabilities(prob, gray, radius, eps)
    return prob
