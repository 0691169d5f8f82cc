"""The working size: images are colorized at a longest side of at most `working_size`, then resized back."""

import cv2


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
