"""Reading and writing images and files: explicit mode handling, atomic writes.

Every error raised here is an `ImageError` whose message starts with the path,
so a batch can log one clear line per bad file and go on.
"""

import os
import tempfile
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

# Pillow's own guard against decompression bombs, raised to 200 megapixels:
# a larger image is refused with an ImageError rather than read.
MAX_PIXELS = 200_000_000


class ImageError(Exception):
    """A file that cannot be used as an image; the message names the file and the problem."""

    def __init__(self, path, problem):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # survives pickling between worker processes
        return (type(self), (str(self.path), self.problem))


def find_images(root):
    """Image files under `root`, recursively, sorted; `root` itself if it is a file.

    Parameters
    ----------
    root : str or Path
        A file or a folder.

    Returns
    -------
    paths : list of Path
        Files whose suffix is in `IMAGE_EXTENSIONS` (case-insensitive). Hidden
        files and folders (names starting with '.') are skipped. A file given
        directly is returned whatever its suffix, so that reading it reports the
        real problem.

    Raises
    ------
    ImageError
        If `root` does not exist.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ImageError(root, "no such file or folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    return sorted(found)


def _open(path):
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow raises DecompressionBombError above twice this

    path = Path(path)
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file")
    if not path.exists():
        raise ImageError(path, "no such file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(path, f"cannot stat file ({exc.strerror})") from None
    if size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image file that Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(path, f"image too large ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(path, f"corrupt or truncated image ({exc})") from None
    return img


def read_image(path):
    """Read an image as an array, EXIF orientation applied.

    Returns
    -------
    image : ndarray
        ``(H, W)`` for grey modes, ``(H, W, 3)`` RGB otherwise; uint8, or
        uint16 for 16-bit grey. Palette, CMYK, YCbCr, LA and RGBA images are
        converted to RGB or grey explicitly (alpha is dropped).

    Raises
    ------
    ImageError
        Missing, empty, unreadable, truncated or non-image files.
    """
    img = _open(path)
    mode = img.mode
    if mode in ("1", "L", "LA"):
        return np.asarray(img.convert("L"))
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16).copy()
    if mode == "I":  # 32-bit integer grey, as Pillow reads some 16-bit PNGs and TIFFs
        arr = np.asarray(img, dtype=np.int64)
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageError(path, f"32-bit integer grey values outside 0..65535 "
                                   f"(range {arr.min()}..{arr.max()}) are not supported")
        return arr.astype(np.uint16)
    if mode == "F":  # floating-point grey: taken as luminance in [0, 1]
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ImageError(path, f"floating-point grey values must lie in [0, 1], "
                                   f"got range {np.nanmin(arr):.4g}..{np.nanmax(arr):.4g}")
        return np.rint(arr * 65535.0).astype(np.uint16)
    return np.asarray(img.convert("RGB"))  # RGB, RGBA, P, CMYK, YCbCr, ...


def to_float(image):
    """uint8/uint16 image to float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    raise TypeError(f"image dtype must be uint8 or uint16, got {image.dtype}")


def read_rgb_u8(path):
    """Read an image as uint8 RGB ``(H, W, 3)`` (grey replicated, 16-bit reduced)."""
    image = read_image(path)
    if image.dtype == np.uint16:
        image = (image.astype(np.uint32) * 255 + 32767) // 65535
        image = image.astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image


def atomic_write_bytes(path, data):
    """Write bytes to `path` through a temporary file in the same folder, then rename.

    A killed process leaves either the old file or the new one, never a
    half-written one; the temporary file is removed on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def encode_image(image, suffix):
    """Encode a uint8/uint16 grey or RGB array to bytes in the format of `suffix`."""
    import cv2

    image = np.asarray(image)
    if suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"cannot write images with suffix {suffix!r}; use one of {IMAGE_EXTENSIONS}")
    if image.ndim == 3:
        image = np.ascontiguousarray(image[..., ::-1])  # RGB -> OpenCV's BGR
    # PNG: OpenCV's defaults measured both the fastest and the smallest of the
    # zlib levels, filters and strategies tried (docs/DESIGN.md).
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix.lower() in (".jpg", ".jpeg") else []
    try:
        ok, buf = cv2.imencode(suffix.lower(), image, params)
    except cv2.error as exc:
        raise ValueError(f"OpenCV could not encode a {image.dtype} {image.shape} image as {suffix}: {exc}") from None
    if not ok:
        raise ValueError(f"OpenCV could not encode an image as {suffix}")
    return buf.tobytes()


def write_image(path, image):
    """Encode `image` by the suffix of `path` and write it atomically."""
    path = Path(path)
    atomic_write_bytes(path, encode_image(image, path.suffix))
