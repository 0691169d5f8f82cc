"""Image-level operations shared by training and colorization: working size, luminance."""

import cv2

from deepcolor.color import rgb_to_luma
from deepcolor.io import to_float


def working_shape(shape, working_size):
    """(rows, cols) with the longest side at most `working_size`, aspect kept, never upsampled."""
    rows, cols = shape[:2]
    scale = min(1.0, working_size / max(rows, cols))
    return max(1, round(rows * scale)), max(1, round(cols * scale))


def resize_to(image, shape, interpolation=cv2.INTER_AREA):
    """Resize a (H, W) or (H, W, C) float32 image to `shape` (rows, cols)."""
    if image.shape[:2] == tuple(shape):
        return image
    return cv2.resize(image, (shape[1], shape[0]), interpolation=interpolation)


def is_colour(image, tolerance=1):
    """True if an (H, W, 3) integer image has channels that differ by more than `tolerance`."""
    if image.ndim == 2:
        return False
    r, g, b = cv2.split(image)  # absdiff on the integer planes: no wide temporaries
    return bool(cv2.absdiff(r, g).max() > tolerance or cv2.absdiff(g, b).max() > tolerance)


def luminance(image):
    """BT.601 luminance in [0, 1], float32 (H, W), of a uint8/uint16 grey or RGB image."""
    if image.ndim == 2:
        return to_float(image)
    return rgb_to_luma(to_float(image))
