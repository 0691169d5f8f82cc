"""Mid-level feature: a dense DAISY descriptor at every pixel (Cheng et al. 2015, Sec. 3.1).

The paper uses DAISY (Tola et al. 2010) without giving its parameters; secondary
sources give 32 values, which is one ring of three histograms of eight
orientations plus the centre histogram: (1 * 3 + 1) * 8 = 32. Two backends
compute it: scikit-image's definition (``skimage.feature.daisy``, computed here
by a vectorised equivalent on OpenCV's Gaussian blur) and OpenCV's
``cv2.xfeatures2d.DAISY_create``; docs/DESIGN.md gives the measured comparison
that chose the default.
"""

import cv2
import numpy as np

from deepcolor.config import check_one_of, check_positive_int

from ._validate import check_gray
from .config import DAISY_BACKENDS as BACKENDS
from .config import DAISY_NORMALIZATIONS as NORMALIZATIONS
from .config import FeatureConfig
# OpenCV's names for the normalisations; it has no L1, which we apply to its raw descriptor.
_OPENCV_NORMS = {"l1": "DAISY_NRM_NONE", "l2": "DAISY_NRM_FULL", "daisy": "DAISY_NRM_PARTIAL",
                 "off": "DAISY_NRM_NONE"}


def daisy_features(gray, radius=FeatureConfig.daisy_radius, rings=FeatureConfig.daisy_rings,
                   histograms=FeatureConfig.daisy_histograms, orientations=FeatureConfig.daisy_orientations,
                   backend=FeatureConfig.daisy_backend, normalization=FeatureConfig.daisy_normalization):
    """Dense DAISY descriptor at every pixel.

    Parameters
    ----------
    gray : ndarray of shape (H, W)
        Luminance in [0, 1], float32 or float64.
    radius : int, optional
        Radius in pixels of the outermost ring. Default: ``FeatureConfig``'s
        (5, chosen at the working size; docs/DESIGN.md).
    rings, histograms, orientations : int, optional
        Descriptor layout, as in ``skimage.feature.daisy``. The defaults
        (``FeatureConfig``'s) give 32 values.
    backend : {'skimage', 'opencv'}, optional
        Which implementation computes it. Default: ``FeatureConfig``'s.
    normalization : {'l1', 'l2', 'daisy', 'off'}, optional
        As in ``skimage.feature.daisy``: the whole descriptor to unit L1 or L2
        norm, each histogram to unit L2 norm ('daisy', Tola et al.), or none
        ('off': raw gradient magnitudes, so flat regions give small values).
        Default 'l1' (``FeatureConfig``'s), scikit-image's default. OpenCV has no 'l1': its raw
        descriptor is scaled to unit sum here.

    Returns
    -------
    features : ndarray of shape (H, W, (rings * histograms + 1) * orientations), float32

    Notes
    -----
    scikit-image skips a border of ``radius`` pixels; we reflect-pad by
    ``radius`` first so every pixel gets a descriptor. OpenCV leaves every
    histogram that reaches outside the image empty, so it gets the same
    reflect padding (the descriptors are then cropped back to the image). The
    two backends normalise differently (scikit-image ``normalization='l1'``: the
    whole descriptor sums to one; OpenCV ``NRM_PARTIAL``: each histogram to unit
    L2 norm), so their values are not interchangeable between a model and a
    run: the backend is part of the feature settings stored with every model.

    References
    ----------
    .. [1] E. Tola, V. Lepetit, P. Fua, "DAISY: An Efficient Dense Descriptor
           Applied to Wide-Baseline Stereo", IEEE TPAMI 32(5), 2010.
    """
    for name, value in (("radius", radius), ("rings", rings), ("histograms", histograms),
                        ("orientations", orientations)):
        check_positive_int(f"DAISY {name}", value, numpy=True)
    check_one_of("DAISY backend", backend, BACKENDS)
    check_one_of("DAISY normalization", normalization, NORMALIZATIONS)
    gray = check_gray(gray)
    if radius >= min(gray.shape):
        raise ValueError(
            f"DAISY radius {radius} needs an image of more than {radius} rows and columns, "
            f"got shape {gray.shape}"
        )
    if backend == "skimage":
        return _daisy_skimage(gray, radius, rings, histograms, orientations, normalization)
    return _daisy_opencv(gray, radius, rings, histograms, orientations, normalization)


def _daisy_skimage(gray, radius, rings, histograms, orientations, normalization):
    """scikit-image's DAISY (``skimage.feature.daisy``, step 1) of the reflect-padded image.

    The same computation as scikit-image's, vectorised and on OpenCV: forward
    differences, orientation weights ``exp(kappa cos(theta - o)) |grad|``,
    Gaussian smoothing with scipy's kernel (truncated at ``int(4 sigma + 0.5)``,
    'reflect' border = OpenCV's BORDER_REFLECT) over all orientations at once
    and once per distinct sigma (scikit-image smooths the centre and the first
    ring with the same sigma twice), the ring samples, the normalisation. It
    equals ``skimage.feature.daisy`` to float32 rounding (tests/test_features.py),
    in a fraction of its time (docs/DESIGN.md; `make bench`, section ``daisy``).
    """
    image = np.pad(gray.astype(np.float32, copy=False), radius, mode="reflect")  # (H + 2r, W + 2r)
    dx = np.zeros_like(image)
    dy = np.zeros_like(image)
    dx[:, :-1] = np.diff(image, axis=1)
    dy[:-1, :] = np.diff(image, axis=0)
    magnitude = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    kappa = orientations / np.pi
    angles = np.array([2 * o * np.pi / orientations - np.pi for o in range(orientations)], np.float32)
    hist = np.exp(kappa * np.cos(theta[..., None] - angles)) * magnitude[..., None]  # (H', W', O)
    hist = hist.astype(np.float32, copy=False)

    sigmas = [radius * (i + 1) / float(2 * rings) for i in range(rings)]
    sigmas = [sigmas[0]] + sigmas  # the centre's, then each ring's
    smoothed = {}
    for sigma in sigmas:
        if sigma not in smoothed:
            half = int(4.0 * sigma + 0.5)
            smoothed[sigma] = cv2.GaussianBlur(hist, (2 * half + 1, 2 * half + 1), sigmaX=sigma, sigmaY=sigma,
                                               borderType=cv2.BORDER_REFLECT).reshape(hist.shape)
    height, width = gray.shape
    parts = [smoothed[sigmas[0]][radius:radius + height, radius:radius + width]]
    ring_radii = [radius * (i + 1) / float(rings) for i in range(rings)]
    for i in range(rings):
        for j in range(histograms):
            angle = 2 * np.pi * j / histograms
            y0 = radius + int(round(ring_radii[i] * np.sin(angle)))
            x0 = radius + int(round(ring_radii[i] * np.cos(angle)))
            parts.append(smoothed[sigmas[i + 1]][y0:y0 + height, x0:x0 + width])
    desc = np.concatenate(parts, axis=-1)  # (H, W, D)
    if normalization == "off":
        return desc
    desc += np.float32(1e-10)
    if normalization == "l1":
        desc /= desc.sum(axis=-1, keepdims=True)
    elif normalization == "l2":
        desc /= np.sqrt((desc * desc).sum(axis=-1, keepdims=True))
    else:  # "daisy": each histogram to unit L2 norm
        blocks = desc.reshape(height, width, -1, orientations)
        blocks /= np.sqrt((blocks * blocks).sum(axis=-1, keepdims=True))
    return desc


def _daisy_opencv(gray, radius, rings, histograms, orientations, normalization):
    height, width = gray.shape
    # OpenCV leaves histograms empty up to about 1.25 * radius from the border
    # (unevenly: measured 5 to 10 px at radius 8), so pad by twice the radius.
    pad = 2 * radius
    padded = np.pad(gray, pad, mode="reflect")
    extractor = cv2.xfeatures2d.DAISY_create(
        radius=float(radius), q_radius=rings, q_theta=histograms, q_hist=orientations,
        norm=getattr(cv2.xfeatures2d, _OPENCV_NORMS[normalization]),
    )
    rows, cols = np.mgrid[pad:pad + height, pad:pad + width]  # the image's pixels in `padded`
    points = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float32)  # (H*W, 2) as (x, y)
    keypoints = cv2.KeyPoint.convert(points, size=1.0)
    u8 = np.clip(np.rint(padded * 255.0), 0, 255).astype(np.uint8)  # OpenCV DAISY takes 8-bit input
    kept, desc = extractor.compute(u8, keypoints)
    if desc is None or len(kept) != height * width:
        raise RuntimeError(
            f"OpenCV DAISY returned {0 if desc is None else len(kept)} descriptors "
            f"for {height * width} pixels"
        )
    desc = desc.reshape(height, width, -1).astype(np.float32, copy=False)  # (H, W, D)
    if normalization == "l1":
        desc /= np.maximum(desc.sum(axis=-1, keepdims=True), np.float32(1e-12))
    return desc
