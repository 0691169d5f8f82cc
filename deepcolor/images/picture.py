"""An image as read from a file (`Picture`), the error a bad file raises, the pixel limit.

Every error raised for a bad input file is an `ImageError` whose message
starts with the path, so a batch can log one clear line per bad file and go
on. This module imports neither Pillow nor OpenCV: the command line reads
`MAX_PIXELS` from it and ``--help`` stays fast.
"""

from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np

from deepcolor.files import display_path

# Default limit against decompression bombs: an image whose header declares
# more pixels is refused with an ImageError before any pixel is decoded.
MAX_PIXELS = 200_000_000


class ImageError(Exception):
    """A file that cannot be used as an image; the message names the file and the problem."""

    def __init__(self, path, problem):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{display_path(path)}: {problem}")

    def __reduce__(self):  # survives pickling between worker processes
        return (type(self), (str(self.path), self.problem))


@dataclass(eq=False)
class Picture:
    """An image as read from a file, with what a processed copy should keep.

    Attributes
    ----------
    pixels : ndarray of shape (H, W) or (H, W, 3), uint8 or uint16
        Grey or RGB values, EXIF orientation applied (rows and columns as
        displayed).
    alpha : ndarray of shape (H, W) or None
        Opacity, same dtype as `pixels` (0: transparent); None if the file has
        no transparency.
    icc_profile : bytes or None
        The embedded ICC profile, if any.
    exif : bytes or None
        The EXIF block as in a JPEG's APP1 segment: ``b"Exif\\x00\\x00"``,
        then a TIFF structure (IFD 0, with the EXIF, GPS and interoperability
        IFDs). The Orientation tag is set to 1, since the orientation is
        applied to `pixels`; TIFF layout tags (strip offsets, bits per sample,
        ...) and tags Pillow cannot write back are left out. None if the file
        has no EXIF tags.
    format : str
        Pillow's name of the file's format: "JPEG", "PNG", "TIFF", "BMP",
        "WEBP", ...
    mode : str
        Pillow's mode of the file as opened ("L", "RGBA", "P", "CMYK",
        "I;16", ...). Pillow names 16-bit RGB(A) files "RGB" ("RGBA"): see
        `bit_depth`.
    notes : tuple of str
        What was wrong with a file that was read all the same (corrupt JPEG
        data that libjpeg reports, a bad checksum of a PNG text chunk), each
        also logged as a warning; empty for a sound file.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    icc_profile: bytes | None
    exif: bytes | None
    format: str
    mode: str
    notes: tuple = ()

    @property
    def bit_depth(self):
        """int: 8 or 16, bits per sample of `pixels`."""
        return 8 * self.pixels.dtype.itemsize

    @property
    def is_grey(self):
        """bool: whether `pixels` is grey ``(H, W)``."""
        return self.pixels.ndim == 2

    @property
    def has_alpha(self):
        """bool: whether the file has transparency (`alpha` is not None)."""
        return self.alpha is not None

    @property
    def icc_colour_space(self):
        """str or None: the ICC profile's colour space ("RGB", "GRAY", "CMYK", ...)."""
        return icc_colour_space(self.icc_profile)

    @property
    def icc_is_rgb(self):
        """bool: whether there is an ICC profile and it describes an RGB colour space."""
        return self.icc_colour_space == "RGB"


def icc_colour_space(profile):
    """Colour space of an ICC profile from its header (bytes 16:20), e.g. "RGB", "GRAY"; None if none."""
    if not profile or len(profile) < 20:
        return None
    return profile[16:20].decode("latin-1").strip()


def check_max_pixels(max_pixels):
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, Integral) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int or None (no limit), got {max_pixels!r}")
    return int(max_pixels)


def check_size(path, width, height, max_pixels):
    n = int(width) * int(height)
    if max_pixels is not None and n > max_pixels:
        raise ImageError(path, f"image of {width} x {height} = {n:,} pixels exceeds the limit "
                               f"of {max_pixels:,} pixels (setting max_pixels, --max-pixels)")


def u16_to_u8(image):
    """uint16 to uint8, rounded: round(v * 255 / 65535) in integers."""
    return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
