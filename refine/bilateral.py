"""Joint bilateral refinement of the chrominance (Cheng et al. 2015, Sec. 3.3).

The network predicts U and V pixel by pixel, so its chrominance is noisy and
bleeds across object edges. A joint (cross) bilateral filter (Petschnigg et al.
2004; Eisemann and Durand 2004) smooths U and V with weights taken from the
luminance, which the output keeps, so chrominance is averaged within regions of
similar luminance and not across luminance edges.
"""

import numpy as np

try:
    import cv2

    _XIMGPROC = getattr(cv2, "ximgproc", None)
except ImportError:  # pragma: no cover - cv2 is a hard dependency
    cv2 = None
    _XIMGPROC = None

from deepcolor.config import check_int, check_positive_float

from .config import RefineConfig

_BORDER = None if cv2 is None else cv2.BORDER_REFLECT_101
# OpenCV treats a guide whose range is below FLT_EPSILON as flat (joint_bilateral_filter.cpp).
_FLAT_RANGE = float(np.finfo(np.float32).eps)


def _require_ximgproc():
    if _XIMGPROC is None:
        raise ImportError(
            "joint_bilateral_refine needs cv2.ximgproc, which only the OpenCV contrib wheels "
            "provide: install opencv-contrib-python-headless (and uninstall any other OpenCV "
            "wheel such as opencv-python, which shadows it)"
        )
    return _XIMGPROC


def _circular_gaussian(radius, sigma_space):
    """Normalised spatial Gaussian on the disc of integer offsets with distance <= radius."""
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    r2 = offsets[:, None] ** 2 + offsets[None, :] ** 2  # (d, d)
    kernel = np.where(r2 <= radius**2, np.exp(-0.5 * r2 / sigma_space**2), 0.0)
    return (kernel / kernel.sum()).astype(np.float32)


def _joint_bilateral(src, guide, radius, sigma_color, sigma_space):
    """Filter ``src`` (H, W, 3) float32 guided by ``guide`` (H, W) float32; same shape out."""
    if float(guide.max()) - float(guide.min()) < _FLAT_RANGE:
        # OpenCV falls back to a *square* d x d GaussianBlur for a flat guide, while any
        # other guide gets a circular window; we keep the circular one so the result does
        # not jump when the guide becomes exactly constant.
        kernel = _circular_gaussian(radius, sigma_space)
        return cv2.filter2D(src, -1, kernel, borderType=_BORDER)
    return _require_ximgproc().jointBilateralFilter(
        guide, src, 2 * radius + 1, sigma_color, sigma_space, borderType=_BORDER
    )


def _check_pair(uv, guide):
    """`uv` (H, W, 2) and `guide` (H, W) as arrays: matching, non-empty, floating point, finite."""
    uv = np.asarray(uv)
    guide = np.asarray(guide)
    if uv.ndim != 3 or uv.shape[-1] != 2:
        raise ValueError(f"uv must have shape (H, W, 2), got {uv.shape}")
    if guide.shape != uv.shape[:2]:
        raise ValueError(
            f"guide must have shape (H, W) = {uv.shape[:2]} to match uv, got {guide.shape}"
        )
    if uv.size == 0:
        raise ValueError(f"uv must not be empty, got shape {uv.shape}")
    for name, array in (("uv", uv), ("guide", guide)):
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"{name} must be float32 or float64, got dtype {array.dtype}")
        if not np.isfinite(array).all():  # a NaN guide makes OpenCV read past its table
            raise ValueError(f"{name} must be finite, got {np.count_nonzero(~np.isfinite(array))} "
                             "NaN or infinite value(s)")
    return uv, guide


def joint_bilateral_refine(uv, guide, diameter=RefineConfig.diameter, sigma_color=RefineConfig.sigma_color,
                           sigma_space=RefineConfig.sigma_space):
    """Smooth the chrominance with a joint bilateral filter guided by the luminance.

    Parameters
    ----------
    uv : ndarray of shape (H, W, 2)
        Chrominance U, V (BT.601 units, roughly [-0.436, 0.436] and
        [-0.615, 0.615]), float32 or float64, finite.
    guide : ndarray of shape (H, W)
        Luminance Y in [0, 1], float32 or float64, finite.
    diameter : int, optional
        Diameter in pixels of the window, an int >= 3. The window is the disc of
        pixels at distance at most ``diameter // 2`` from the centre. Default
        ``RefineConfig.diameter`` (15).
    sigma_color : float, optional
        Standard deviation of the Gaussian range kernel, in units of the guide
        (luminance in [0, 1]): pixels whose luminance differs by much more than
        this contribute little. Default ``RefineConfig.sigma_color`` (0.05).
    sigma_space : float, optional
        Standard deviation in pixels of the Gaussian spatial kernel. Default
        ``RefineConfig.sigma_space`` (6.0).

    Returns
    -------
    uv : ndarray of shape (H, W, 2), float32
        The refined chrominance.

    Raises
    ------
    ValueError
        If the shapes do not match, a parameter is out of range, or a value is
        not finite.
    TypeError
        If ``uv`` or ``guide`` is not floating point.
    ImportError
        If OpenCV's contrib module ``cv2.ximgproc`` is missing.

    Notes
    -----
    Each output pixel p is ``sum_q w(p, q) uv(q) / sum_q w(p, q)`` over the
    pixels q with ``|p - q| <= diameter // 2``, where
    ``w(p, q) = exp(-|p - q|^2 / (2 sigma_space^2)) *
    exp(-(guide(p) - guide(q))^2 / (2 sigma_color^2))``. It is computed by
    ``cv2.ximgproc.jointBilateralFilter`` (which tabulates the range kernel in
    4096 bins with linear interpolation) with ``cv2.BORDER_REFLECT_101`` borders
    (``dcb|abcd|cba``, as ``np.pad(mode='reflect')``). For a guide that is
    exactly constant OpenCV switches to a square Gaussian blur; we instead apply
    the same circular spatial kernel, so a flat guide gives a plain circular
    Gaussian blur.

    Cheng et al. (2015, Sec. 3.3) refine the chrominance with a joint bilateral
    filter but give neither the window nor the two sigmas; the defaults are
    `RefineConfig`'s, what the command line uses, chosen on BSDS500 val
    (docs/DESIGN.md).

    References
    ----------
    .. [1] Z. Cheng, Q. Yang, B. Sheng, "Deep Colorization", ICCV 2015.
    .. [2] G. Petschnigg, R. Szeliski, M. Agrawala, M. Cohen, H. Hoppe,
           K. Toyama, "Digital Photography with Flash and No-Flash Image Pairs",
           ACM SIGGRAPH 2004.
    """
    _require_ximgproc()
    uv, guide = _check_pair(uv, guide)
    # OpenCV would silently filter diameters 1 and 2 with a 3 x 3 window.
    check_int("diameter", diameter, 3, numpy=True)
    sigma_color = check_positive_float("sigma_color", sigma_color, numpy=True)
    sigma_space = check_positive_float("sigma_space", sigma_space, numpy=True)

    height, width = guide.shape
    # OpenCV takes 1 or 3 channels: one 3-channel call (U, V, zeros) gives the same bits as
    # two 1-channel calls and took ~13 ms instead of ~20 ms (CPU) on a 171 x 256 image.
    src = np.zeros((height, width, 3), dtype=np.float32)  # (H, W, 3)
    src[..., :2] = uv
    out = _joint_bilateral(src, guide.astype(np.float32), int(diameter) // 2,
                           sigma_color, sigma_space)  # (H, W, 3)
    return np.ascontiguousarray(out[..., :2])
