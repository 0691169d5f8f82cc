"""Colour conversions in the paper's YUV space (ITU-R BT.601, analogue form), and integers to floats and back.

Cheng et al. (2015) predict the chrominance U, V of each pixel from its luminance
Y. We use the BT.601 weights on RGB in [0, 1]::

    Y =  0.299 R + 0.587 G + 0.114 B              in [0, 1]
    U =  0.492 (B - Y)                            in [-0.436, 0.436]
    V =  0.877 (R - Y)                            in [-0.615, 0.615]

References
----------
.. [1] Z. Cheng, Q. Yang, B. Sheng, "Deep Colorization", ICCV 2015.
.. [2] ITU-R Recommendation BT.601-7, Studio encoding parameters of digital
       television for standard 4:3 and wide-screen 16:9 aspect ratios.
"""

import math
import warnings

import cv2
import numpy as np

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)
U_MAX = 0.436  # 0.492 * (1 - 0.114)
V_MAX = 0.615  # 0.877 * (1 - 0.299)

# Rows give Y, U, V as combinations of R, G, B.
_RGB2YUV = np.array(
    [
        LUMA_WEIGHTS,
        0.492 * (np.array([0.0, 0.0, 1.0]) - LUMA_WEIGHTS),
        0.877 * (np.array([1.0, 0.0, 0.0]) - LUMA_WEIGHTS),
    ]
)
_YUV2RGB = np.linalg.inv(_RGB2YUV)


def _check_image(image, channels, name):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != channels:
        raise ValueError(
            f"{name} must have shape (H, W, {channels}), got {image.shape}"
        )
    return image


def _as_float(image):
    """Float image in [0, 1]: uint8/uint16 are scaled, floats kept (float32 or float64)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        return image
    raise TypeError(f"image dtype must be uint8, uint16 or floating, got {image.dtype}")


def rgb_to_yuv(rgb):
    """Convert RGB to BT.601 YUV.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3)
        uint8, uint16, or float in [0, 1].

    Returns
    -------
    yuv : ndarray of shape (H, W, 3)
        Y in [0, 1], U in [-0.436, 0.436], V in [-0.615, 0.615]; float32 unless
        the input is float64.
    """
    rgb = _as_float(_check_image(rgb, 3, "rgb"))
    return rgb @ _RGB2YUV.T.astype(rgb.dtype)


def rgb_to_luma(rgb):
    """BT.601 luminance Y of an RGB image, shape (H, W), same scaling rules as `rgb_to_yuv`."""
    rgb = _as_float(_check_image(rgb, 3, "rgb"))
    return rgb @ LUMA_WEIGHTS.astype(rgb.dtype)


def to_float(image):
    """uint8/uint16 image to float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    raise TypeError(f"image dtype must be uint8 or uint16, got {image.dtype}")


def luminance(image):
    """BT.601 luminance in [0, 1], float32 (H, W), of a uint8/uint16 grey or RGB image."""
    if image.ndim == 2:
        return to_float(image)
    return rgb_to_luma(to_float(image))


def is_colour(image, tolerance=1):
    """True if an (H, W, 3) integer image has channels that differ by more than `tolerance`."""
    if image.ndim == 2:
        return False
    r, g, b = cv2.split(image)  # absdiff on the integer planes: no wide temporaries
    return bool(cv2.absdiff(r, g).max() > tolerance or cv2.absdiff(g, b).max() > tolerance)


def rgb_to_gray_u8(rgb):
    """8-bit BT.601 luma of a uint8 RGB image: round(0.299 R + 0.587 G + 0.114 B).

    This is how the grey inputs of the benchmark are made from true colour images.
    """
    rgb = _check_image(rgb, 3, "rgb")
    if rgb.dtype != np.uint8:
        raise TypeError(f"rgb must be uint8, got {rgb.dtype}")
    y = rgb.astype(np.float32) @ LUMA_WEIGHTS.astype(np.float32)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def yuv_to_rgb(yuv):
    """Inverse of `rgb_to_yuv`; values are not clipped (out-of-gamut colours stay)."""
    yuv = _check_image(yuv, 3, "yuv")
    if not np.issubdtype(yuv.dtype, np.floating):
        raise TypeError(f"yuv must be floating, got {yuv.dtype}")
    return yuv @ _YUV2RGB.T.astype(yuv.dtype)


def combine_luma_chroma(y, uv):
    """RGB image with luminance exactly `y` and chrominance as close to `uv` as the gamut allows.

    Parameters
    ----------
    y : ndarray of shape (H, W), float in [0, 1]
        Luminance to keep.
    uv : ndarray of shape (H, W, 2), float, finite
        Predicted chrominance.

    Returns
    -------
    rgb : ndarray of shape (H, W, 3), float32 in [0, 1]

    Notes
    -----
    Clipping an out-of-gamut RGB colour channel by channel changes its luminance.
    Instead each out-of-gamut pixel's chrominance is scaled towards zero by the
    largest factor s in [0, 1] that keeps R, G and B in [0, 1]; Y is then
    unchanged, so the output's luminance is the input's up to the final
    rounding to integers. The paper does not say how it handles the gamut.
    """
    y = np.asarray(y, dtype=np.float32)
    uv = np.asarray(uv, dtype=np.float32)
    if y.ndim != 2 or uv.shape != y.shape + (2,):
        raise ValueError(f"y must be (H, W) and uv (H, W, 2), got {y.shape} and {uv.shape}")
    if y.size and not (0.0 <= float(y.min()) and float(y.max()) <= 1.0):
        raise ValueError(f"y must lie in [0, 1], got range [{y.min():.4g}, {y.max():.4g}]")
    if not np.isfinite(uv).all():
        raise ValueError("uv must be finite, got NaN or infinite values")
    if y.size == 0:
        return np.zeros(y.shape + (3,), np.float32)
    return _combine_planes(y, uv[..., 0], uv[..., 1])


_YUV2RGB_F32 = _YUV2RGB.astype(np.float32)


def _combine_planes(y, u, v):
    """`combine_luma_chroma`'s core, unchecked: Y, U, V planes (H, W) float32 -> RGB (H, W, 3) float32 in [0, 1].

    `deepcolor.colorize.compose` calls it per strip of a large image, after checking its inputs once.
    """
    yuv = cv2.merge([y, u, v])  # (H, W, 3)
    rgb = cv2.transform(yuv, _YUV2RGB_F32)  # (H, W, 3), per-pixel matrix product
    inside = cv2.inRange(rgb, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # (H, W) uint8, 255 where in gamut
    if cv2.countNonZero(inside) == inside.size:
        return rgb
    # only out-of-gamut pixels: scale their chroma at constant luminance
    outside = np.flatnonzero(inside == 0)  # (n,) indices into the flattened image
    flat = rgb.reshape(-1, 3)  # a view: rgb is contiguous
    yy = y.reshape(-1)[outside][:, None]  # (n, 1)
    delta = flat[outside] - yy  # (n, 3): RGB change due to the chroma
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(delta > 0, (1.0 - yy) / delta, np.where(delta < 0, -yy / delta, np.inf))
    scale = np.clip(room.min(axis=1, keepdims=True), 0.0, 1.0)
    flat[outside] = np.clip(yy + scale * delta, 0.0, 1.0)
    return rgb


def to_uint8(image):
    """Round a float image in [0, 1] to uint8 (to nearest, values outside clipped)."""
    image = np.asarray(image, dtype=np.float32)
    if image.size == 0:
        return np.zeros(image.shape, np.uint8)
    # saturate_cast rounds to nearest (ties to even, as np.rint) and clips to 0..255
    out = cv2.convertScaleAbs(np.maximum(image, 0.0), alpha=255.0)
    return out.reshape(image.shape)


def to_uint16(image):
    """Round a float image in [0, 1] to uint16 (to nearest, values outside clipped)."""
    image = np.asarray(image, dtype=np.float32)
    out = np.clip(image, 0.0, 1.0) * np.float32(65535.0)
    return np.rint(out, out=out).astype(np.uint16)


def to_integer(image, dtype):
    """`to_uint8` or `to_uint16` by `dtype`."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return to_uint8(image)
    if dtype == np.uint16:
        return to_uint16(image)
    raise TypeError(f"dtype must be uint8 or uint16, got {dtype}")


def scale_chroma(uv, factor):
    """Chrominance (U, V) multiplied by `factor`: stronger (> 1) or weaker (< 1) colour at the same luminance.

    Parameters
    ----------
    uv : ndarray of shape (H, W, 2), float
        Predicted chrominance.
    factor : float
        Saturation factor, finite and >= 0: 1 leaves `uv` as it is (Cheng et
        al.'s output), 0 gives grey, 1.5 half as much colour again.

    Returns
    -------
    uv : ndarray of shape (H, W, 2), float32
        ``factor * uv``. Luminance is not involved: `combine_luma_chroma`
        then keeps Y exactly and pulls any colour pushed out of the RGB gamut
        back towards grey at constant Y.

    Raises
    ------
    ValueError
        If `uv` is not (H, W, 2) or `factor` is negative, infinite or NaN.

    Notes
    -----
    Cheng et al. [1]_ output the network's least-squares chrominance as it is;
    least squares averages the plausible colours of a pixel, which mutes them
    (docs/DESIGN.md, "Saturation"). Scaling U and V together keeps each
    pixel's hue angle in the UV plane and scales its chroma. Because the
    joint bilateral refinement and the bilinear upsampling are linear in U, V,
    scaling before or after them gives the same result.

    References
    ----------
    .. [1] Z. Cheng, Q. Yang, B. Sheng, "Deep Colorization", ICCV 2015.
    """
    uv = np.asarray(uv, dtype=np.float32)
    if uv.ndim != 3 or uv.shape[-1] != 2:
        raise ValueError(f"uv must have shape (H, W, 2), got {uv.shape}")
    if not isinstance(factor, (int, float, np.floating, np.integer)) or not math.isfinite(factor) or factor < 0:
        raise ValueError(f"saturation factor must be a finite number >= 0, got {factor!r}")
    return uv if factor == 1 else uv * np.float32(factor)


# --- CIE Lab ----------------------------------------------------------------------------------
# scikit-image's CIELAB (sRGB, D65, 2 degree observer): L in [0, 100], a and b in Lab units.
# The comparison systems (`deepcolor.baselines`) work in it; deepcolor itself in YUV.


def rgb_to_lab(rgb):
    """CIELAB lightness and chrominance of an sRGB image (scikit-image's `rgb2lab`).

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3)
        uint8, or float in [0, 1].

    Returns
    -------
    L : ndarray of shape (H, W), float32
        Lightness in [0, 100].
    ab : ndarray of shape (H, W, 2), float32
        a and b in Lab units: within a in [-86.2, 98.2], b in [-107.9, 94.5]
        for sRGB colours.
    """
    from skimage.color import rgb2lab  # lazy: scikit-image's colour module loads scipy (0.4 s)

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
    if rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float32) / np.float32(255.0)
    elif not np.issubdtype(rgb.dtype, np.floating):
        raise TypeError(f"rgb must be uint8 or float in [0, 1], got {rgb.dtype}")
    lab = rgb2lab(rgb).astype(np.float32, copy=False)  # (H, W, 3)
    return lab[..., 0], lab[..., 1:]


def lab_to_rgb(L, ab):
    """sRGB of CIELAB colours (scikit-image's `lab2rgb`), clipped to the gamut.

    Parameters
    ----------
    L : ndarray of shape (H, W)
        Lightness in [0, 100].
    ab : ndarray of shape (H, W, 2)
        Chrominance in Lab units.

    Returns
    -------
    rgb : ndarray of shape (H, W, 3), float32 in [0, 1]

    Notes
    -----
    A predicted (L, a, b) may lie outside the sRGB gamut; scikit-image clips
    the XYZ and RGB values (its warning about clipped negative Z values is
    silenced: clipping is the intended handling here). The baselines use only
    the chroma of this colour, at the input's own luminance.
    """
    from skimage.color import lab2rgb  # lazy: scikit-image's colour module loads scipy (0.4 s)

    L = np.asarray(L, dtype=np.float32)
    ab = np.asarray(ab, dtype=np.float32)
    if L.ndim != 2 or ab.shape != L.shape + (2,):
        raise ValueError(f"L must be (H, W) and ab (H, W, 2), got {L.shape} and {ab.shape}")
    lab = np.concatenate([L[..., None], ab], axis=-1)  # (H, W, 3)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*negative Z values.*")
        return lab2rgb(lab).astype(np.float32, copy=False)


def luma_to_lightness(y):
    """CIELAB lightness L of the grey sRGB colour (y, y, y), for BT.601 luminance y.

    Parameters
    ----------
    y : ndarray of shape (H, W), float in [0, 1]

    Returns
    -------
    L : ndarray of shape (H, W), float32 in [0, 100]

    Notes
    -----
    This is what a baseline sees of a grey input: the grey photo (R = G = B =
    Y) in Lab. It is computed in closed form (sRGB decoding, then CIE 1976
    L*), equal to scikit-image's ``rgb2lab`` of the grey image within 1e-3
    (`test_luma_to_lightness_unit`) at a third of the cost.
    """
    y = np.clip(np.asarray(y, dtype=np.float32), 0.0, 1.0)
    linear = np.where(y <= 0.04045, y / 12.92, ((y + 0.055) / 1.055) ** 2.4)  # relative luminance Y/Yn
    eps = (6.0 / 29.0) ** 3
    f = np.where(linear > eps, np.cbrt(linear), linear / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return (116.0 * f - 16.0).astype(np.float32)
