import numpy as np


def check_gray(gray):
    """Validate a luminance image: 2-D, floating, finite values in [0, 1]."""
    gray = np.asarray(gray)
    if gray.ndim != 2:
        raise ValueError(f"gray must be a 2-D (H, W) luminance image, got shape {gray.shape}")
    if not np.issubdtype(gray.dtype, np.floating):
        raise TypeError(f"gray must be float32 or float64 in [0, 1], got dtype {gray.dtype}")
    if gray.size == 0:
        raise ValueError(f"gray must not be empty, got shape {gray.shape}")
    lo, hi = float(gray.min()), float(gray.max())
    if not (0.0 <= lo and hi <= 1.0):
        raise ValueError(f"gray values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]")
    return gray
