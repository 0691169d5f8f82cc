"""Image quality measures: PSNR, SSIM and colourfulness of colour images, and segmentation scores.

PSNR and SSIM on RGB, uint8, at native resolution with ``data_range=255``
(`CONVENTIONS`); the colourfulness of Hasler and Suesstrunk. Folder
evaluation with these measures is `deepcolor.evaluate`.

References
----------
.. [1] Z. Cheng, Q. Yang, B. Sheng, "Deep Colorization", ICCV 2015.
.. [2] D. Hasler, S. Suesstrunk, "Measuring colourfulness in natural images",
       Proc. SPIE 5007, Human Vision and Electronic Imaging VIII, 2003.
"""

import math

import numpy as np

CONVENTIONS = "RGB, uint8, native resolution, data_range=255"

# skimage's structural_similarity uses a 7x7 window by default (Wang et al. 2004).
SSIM_MIN_SIDE = 7


def _check_rgb_u8(image, name):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8, got {image.dtype}")
    return image


def _check_pair(truth, pred):
    truth = _check_rgb_u8(truth, "truth")
    pred = _check_rgb_u8(pred, "pred")
    if truth.shape != pred.shape:
        raise ValueError(
            f"truth and pred must have the same shape, got {truth.shape} and {pred.shape}"
        )
    return truth, pred


def psnr(truth, pred):
    """Peak signal-to-noise ratio in dB between two RGB uint8 images.

    Parameters
    ----------
    truth : ndarray of shape (H, W, 3), uint8
        True colour image, values in [0, 255].
    pred : ndarray of shape (H, W, 3), uint8
        Colourized image of the same shape.

    Returns
    -------
    psnr : float
        ``10 log10(255**2 / MSE)`` in dB, the MSE taken over all pixels and the
        three channels; ``inf`` for identical images.

    Raises
    ------
    ValueError
        If an image is not ``(H, W, 3)`` or the shapes differ.
    TypeError
        If an image is not uint8.

    Notes
    -----
    Computed by ``skimage.metrics.peak_signal_noise_ratio`` with
    ``data_range=255`` on RGB at native resolution, as Cheng et al. [1]_ report
    it. Identical images return ``inf`` without calling scikit-image, which
    would warn about a division by zero.

    References
    ----------
    .. [1] Z. Cheng, Q. Yang, B. Sheng, "Deep Colorization", ICCV 2015.
    """
    truth, pred = _check_pair(truth, pred)
    if np.array_equal(truth, pred):
        return math.inf
    from skimage.metrics import peak_signal_noise_ratio  # lazy: skimage.metrics loads scipy.stats (0.5 s)

    return float(peak_signal_noise_ratio(truth, pred, data_range=255))


def ssim(truth, pred):
    """Structural similarity between two RGB uint8 images.

    Parameters
    ----------
    truth : ndarray of shape (H, W, 3), uint8
        True colour image, values in [0, 255].
    pred : ndarray of shape (H, W, 3), uint8
        Colourized image of the same shape.

    Returns
    -------
    ssim : float
        Mean SSIM over the image and the three channels, at most 1 (identical
        images).

    Raises
    ------
    ValueError
        If an image is not ``(H, W, 3)``, the shapes differ, or a side is
        shorter than 7 pixels (the SSIM window).
    TypeError
        If an image is not uint8.

    Notes
    -----
    ``skimage.metrics.structural_similarity(truth, pred, channel_axis=-1,
    data_range=255)`` with scikit-image's defaults (7x7 uniform window, sample
    covariance). Cheng et al. [1]_ report PSNR only; SSIM is added because later
    colourization papers report it.

    References
    ----------
    .. [1] Z. Cheng, Q. Yang, B. Sheng, "Deep Colorization", ICCV 2015.
    .. [2] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
           assessment: from error visibility to structural similarity", IEEE
           Trans. Image Processing 13(4), 2004.
    """
    truth, pred = _check_pair(truth, pred)
    if min(truth.shape[:2]) < SSIM_MIN_SIDE:
        raise ValueError(
            f"ssim needs images of at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} pixels "
            f"(its window), got {truth.shape[:2]}"
        )
    from skimage.metrics import structural_similarity  # lazy: skimage.metrics loads scipy.stats (0.5 s)

    return float(structural_similarity(truth, pred, channel_axis=-1, data_range=255))


def colourfulness(rgb):
    """Colourfulness of Hasler and Suesstrunk (2003).

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3)
        RGB image on the 0-255 scale: uint8, or any real dtype holding values
        in [0, 255].

    Returns
    -------
    cf : float
        ``sqrt(std_rg**2 + std_yb**2) + 0.3 * sqrt(mean_rg**2 + mean_yb**2)``
        with ``rg = R - G`` and ``yb = (R + G) / 2 - B``; 0 for a grey image.

    Raises
    ------
    ValueError
        If `rgb` is not ``(H, W, 3)`` or is empty.
    TypeError
        If `rgb` is not of a real numeric dtype.

    Notes
    -----
    Standard deviations are population ones (``ddof=0``), as in the paper [1]_
    and in DDColor's ``calculate_cf``. Computed in float64.

    References
    ----------
    .. [1] D. Hasler, S. Suesstrunk, "Measuring colourfulness in natural
           images", Proc. SPIE 5007, Human Vision and Electronic Imaging VIII,
           2003.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
    if rgb.size == 0:
        raise ValueError(f"rgb must not be empty, got shape {rgb.shape}")
    if rgb.dtype == np.bool_ or not (
        np.issubdtype(rgb.dtype, np.integer) or np.issubdtype(rgb.dtype, np.floating)
    ):
        raise TypeError(f"rgb must be of an integer or floating dtype, got {rgb.dtype}")
    rgb = rgb.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g  # (H, W)
    yb = 0.5 * (r + g) - b  # (H, W)
    spread = math.hypot(float(rg.std()), float(yb.std()))
    centre = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * centre


def segmentation_scores(pred, truth, n_groups):
    """Pixel accuracy and mean IoU of group label maps.

    Parameters
    ----------
    pred, truth : ndarray of int, same shape
        Group indices in ``0..n_groups-1``; `truth` is -1 where unlabelled
        (those pixels are not counted); `pred` may hold other values (e.g.
        ``n_groups`` for "other"), which count as wrong.
    n_groups : int

    Returns
    -------
    scores : dict
        ``pixel_accuracy`` over labelled pixels, ``mean_iou`` over the groups
        present in `truth` or `pred`, ``confusion`` ((n_groups, n_groups + 1)
        counts, rows truth, last column "other").
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth must have the same shape, got {pred.shape} and {truth.shape}")
    pred = pred.ravel().astype(np.int64)
    truth = truth.ravel().astype(np.int64)
    if truth.size and truth.max() >= n_groups:
        raise ValueError(f"truth holds group {truth.max()}, but n_groups={n_groups}")
    keep = truth >= 0
    pred, truth = pred[keep], truth[keep]
    pred = np.where((pred >= 0) & (pred < n_groups), pred, n_groups)  # anything else is "other"
    confusion = np.bincount(truth * (n_groups + 1) + pred, minlength=n_groups * (n_groups + 1))
    confusion = confusion.reshape(n_groups, n_groups + 1)
    hits = np.diag(confusion[:, :n_groups])
    union = confusion.sum(axis=1) + confusion[:, :n_groups].sum(axis=0) - hits
    present = union > 0
    return {
        "pixel_accuracy": float(hits.sum() / max(truth.size, 1)),
        "mean_iou": float(np.mean(hits[present] / union[present])) if present.any() else 0.0,
        "n_pixels": int(truth.size),
        "confusion": confusion,
    }
