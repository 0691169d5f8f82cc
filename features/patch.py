"""Low-level feature: the grey values of the patch around every pixel (Cheng et al. 2015, Sec. 3.1)."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._validate import check_gray
from .config import FeatureConfig


def patch_features(gray, size=FeatureConfig.patch_size):
    """Luminance of the ``size x size`` neighbourhood of every pixel.

    Parameters
    ----------
    gray : ndarray of shape (H, W)
        Luminance in [0, 1], float32 or float64.
    size : int, optional
        Side of the square patch, a positive odd integer. Default:
        ``FeatureConfig.patch_size``, 7 as in the paper.

    Returns
    -------
    features : ndarray of shape (H, W, size**2), float32
        Row-major patch values; borders are reflect-padded (``np.pad`` mode
        ``'reflect'``), so a pixel on the border sees its mirrored neighbours.

    References
    ----------
    .. [1] Z. Cheng, Q. Yang, B. Sheng, "Deep Colorization", ICCV 2015.
    """
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1 or size % 2 == 0:
        raise ValueError(f"patch size must be a positive odd int, got {size!r}")
    gray = check_gray(gray)
    half = size // 2
    if half >= min(gray.shape):
        raise ValueError(
            f"patch size {size} needs an image of at least {half + 1} rows and columns, "
            f"got shape {gray.shape}"
        )
    padded = np.pad(gray.astype(np.float32, copy=False), half, mode="reflect")
    windows = sliding_window_view(padded, (size, size))  # (H, W, size, size), a view
    return windows.reshape(gray.shape + (size * size,))  # copies into (H, W, size**2)
