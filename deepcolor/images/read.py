"""Reading image files: explicit mode handling, transparency, ICC profile and EXIF data.

`read_picture` carries what a colorized copy should keep from its input: bit
depth, transparency, ICC profile and EXIF data. Pillow decodes; OpenCV and
tifffile take over where Pillow loses bits or cannot identify the file.

Pillow and tifffile are imported inside the functions that need them (here and in
`metadata`, `tiff`, `write`), so that the command line's ``--help`` stays fast.
"""

import contextlib
import logging
import re
import stat
import struct
import threading
from pathlib import Path

import cv2
import numpy as np

from deepcolor.files import display_path
from deepcolor.images.diagnose import diagnose, diagnose_jpeg, diagnose_png, frames_note, jpeg_frame, jpeg_warnings
from deepcolor.images.formats import sniff_format
from deepcolor.images.metadata import clean_exif, orient, png_exif
from deepcolor.images.picture import MAX_PIXELS, ImageError, Picture, check_max_pixels, check_size, u16_to_u8
from deepcolor.images.tiff import read_tiff, read_tiff_alone

log = logging.getLogger(__name__)


# Pillow's own decompression-bomb check reads the global Image.MAX_IMAGE_PIXELS
# in Image.open and in some decoders' load(). While a read_picture call is in
# progress (ours is then in force, or was switched off on purpose) it is set to
# None, and put back when the last concurrent call ends.
_bomb_lock = threading.Lock()
_bomb_users = 0
_bomb_saved = None


@contextlib.contextmanager
def _pillow_bomb_check_off():
    global _bomb_users, _bomb_saved
    from PIL import Image  # lazy: --help stays fast

    with _bomb_lock:
        if _bomb_users == 0:
            _bomb_saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _bomb_users += 1
    try:
        yield
    finally:
        with _bomb_lock:
            _bomb_users -= 1
            if _bomb_users == 0:
                Image.MAX_IMAGE_PIXELS = _bomb_saved


def _check_file(path):
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file")
    if not path.exists():
        raise ImageError(path, "no such file")
    try:
        info = path.stat()
    except OSError as exc:
        raise ImageError(path, f"cannot stat file ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):  # opening a FIFO would block; a device never ends
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) or \
            stat.S_ISBLK(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a file"
        raise ImageError(path, f"not a regular file ({kind}); not read")
    if info.st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")


def read_picture(path, max_pixels=MAX_PIXELS):
    """Read an image file with its transparency, ICC profile and EXIF data.

    Parameters
    ----------
    path : str or Path
        Any file Pillow can open (PNG, JPEG, TIFF, BMP, WebP, ...).
    max_pixels : int or None, optional
        Refuse an image whose header declares more than this many pixels
        (rows x columns), before decoding it: a guard against decompression
        bombs. None: no limit.

    Returns
    -------
    picture : Picture
        Grey modes ("1", "L", "LA") give uint8 ``(H, W)``; 16-bit grey
        ("I;16*", and "I" with values in 0..65535) gives uint16 ``(H, W)``;
        "F" with values in [0, 1] gives uint16 ``(H, W)`` scaled by 65535.
        Other modes (RGB, RGBA, P, PA, CMYK, YCbCr, ...) are converted
        explicitly to uint8 RGB ``(H, W, 3)``; 16-bit RGB(A) PNG and TIFF files
        stay 16-bit (uint16). Alpha (RGBA, LA, PA, P or L or RGB with a
        transparent colour) is returned apart in ``picture.alpha``.

    Raises
    ------
    ImageError
        Missing, empty, unreadable, truncated, corrupt or non-image files; an
        unsupported mode or value range; an image larger than `max_pixels`.
    ValueError
        If `max_pixels` is neither None nor a positive int.

    Notes
    -----
    Pillow decodes 16-bit RGB(A) files to 8 bits per sample, so those are
    decoded by OpenCV (``cv2.IMREAD_UNCHANGED``, BGR to RGB) and the EXIF
    orientation is applied with NumPy. CMYK is converted with Pillow's naive
    formula, not through its ICC profile (which is returned as read).

    Pillow's own decompression-bomb check (``PIL.Image.MAX_IMAGE_PIXELS``) is
    switched off while the file is read, so that `max_pixels` alone decides,
    and put back afterwards.
    """
    max_pixels = check_max_pixels(max_pixels)
    path = Path(path)
    _check_file(path)
    from PIL import Image, ImageOps, UnidentifiedImageError  # lazy: --help stays fast

    with _pillow_bomb_check_off():
        try:
            with Image.open(path) as img:  # lazy: reads the header only
                width, height = img.size
                n = width * height
                if max_pixels is not None and n > max_pixels:
                    raise ImageError(path, f"image of {width} x {height} = {n:,} pixels exceeds the limit "
                                           f"of {max_pixels:,} pixels (setting max_pixels, --max-pixels)")
                if img.format == "TIFF":  # tifffile first: Pillow scrambles raw TIFFs of orientation 5..8
                    picture = read_tiff(path, img)
                    if picture is not None:
                        return picture
                if _is_16bit_colour(img):
                    return _read_16bit_colour(path, img)
                img.load()
                ImageOps.exif_transpose(img, in_place=True)
                picture = _picture_from_pillow(path, img)
                if img.format in ("JPEG", "MPO"):
                    picture.notes = jpeg_warnings(path)
                picture.notes += frames_note(path, img)
                return picture
        except PermissionError:
            raise ImageError(path, "permission denied") from None
        except UnidentifiedImageError as exc:
            return _read_fallback(path, max_pixels, exc)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            reason = diagnose(path)
            raise ImageError(path, f"corrupt or truncated image ({reason + '; Pillow: ' if reason else ''}{exc})") \
                from None


def _read_fallback(path, max_pixels, exc):
    """A file Pillow cannot identify: read it with OpenCV or tifffile, or say what it is and why it fails."""
    kind = sniff_format(path)
    if kind is None:
        raise ImageError(path, "not an image file that Pillow can read")
    try:
        reason = {"PNG": diagnose_png, "JPEG": diagnose_jpeg}.get(kind, lambda p: None)(path)
    except OSError as err:
        raise ImageError(path, f"unreadable file ({err.strerror or err})") from None
    # Another decoder is tried where the structure shows no fault, or only a bad
    # checksum of an ancillary PNG chunk (text, time, ...; its name starts in
    # lower case), which libpng skips: the pixels are intact.
    ancillary = reason is not None and re.match(r"corrupt PNG: bad checksum \(CRC\) of its '[a-z]", reason)
    picture, detail, decoder = None, None, "tifffile" if kind == "TIFF" else "OpenCV"
    if reason is None or ancillary:
        try:
            picture = read_tiff_alone(path, max_pixels) if kind == "TIFF" else _read_opencv(path, kind, max_pixels)
        except ImageError as err:
            detail = err.problem
    if picture is not None:
        note = f"{reason or f'a {kind} file Pillow cannot read'}; read by {decoder} instead of Pillow"
        log.warning("%s: %s", display_path(path), note)
        picture.notes = (note,)
        return picture
    if detail and detail.startswith("image of "):  # over max_pixels
        raise ImageError(path, detail)
    why = reason or f"corrupt or unsupported {kind} file: neither Pillow nor {decoder} can decode it"
    raise ImageError(path, f"{why}{' (' + detail + ')' if detail else ''}")


def _read_opencv(path, kind, max_pixels):
    """Picture decoded by OpenCV (a file Pillow cannot read); None if OpenCV cannot either."""
    if kind == "PNG":
        with open(path, "rb") as fh:
            head = fh.read(24)
        if len(head) == 24 and head[12:16] == b"IHDR":
            check_size(path, *struct.unpack(">II", head[16:24]), max_pixels)
    elif kind == "JPEG":
        frame = jpeg_frame(path)
        if frame is not None:
            check_size(path, frame[3], frame[2], max_pixels)
    else:
        return None  # no header parsed here: not decoded blind (a decompression bomb)
    data = np.fromfile(path, dtype=np.uint8)
    # JPEG: OpenCV applies the EXIF orientation (flags without IMREAD_IGNORE_ORIENTATION);
    # PNG: read unchanged, oriented here from its eXIf chunk.
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR if kind == "JPEG" else cv2.IMREAD_UNCHANGED
    try:
        arr = cv2.imdecode(data, flags)
    except cv2.error:
        return None
    if arr is None or arr.dtype not in (np.uint8, np.uint16) or arr.size == 0:
        return None
    exif = png_exif(path) if kind == "PNG" else None
    if exif is not None:
        arr = orient(arr, exif.get(0x0112, 1))
    alpha = None
    if arr.ndim == 3 and arr.shape[2] == 4:
        alpha, arr = arr[..., 3].copy(), arr[..., :3]
    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr[..., ::-1])  # BGR -> RGB
    return Picture(arr, alpha, None, clean_exif(exif, path), kind, "OpenCV")


def _picture_from_pillow(path, img):
    """Picture from an opened, loaded and oriented Pillow image."""
    mode = img.mode
    icc = img.info.get("icc_profile") or None
    exif = clean_exif(img.getexif(), path)
    alpha = None
    try:
        if mode in ("1", "L", "LA", "La"):
            if mode in ("LA", "La") or img.has_transparency_data:
                la = np.asarray(img.convert("LA"))  # (H, W, 2)
                pixels, alpha = la[..., 0].copy(), la[..., 1].copy()
            else:
                pixels = np.array(img.convert("L") if mode == "1" else img)
        elif mode.startswith("I;16"):
            pixels = np.asarray(img, dtype=np.uint16).copy()  # native byte order
            key = img.info.get("transparency")
            if isinstance(key, int):  # tRNS: one transparent grey value
                alpha = np.where(pixels == key, 0, 65535).astype(np.uint16)
        elif mode == "I":  # 32-bit integer grey, as Pillow reads some 16-bit PNGs and TIFFs
            arr = np.asarray(img, dtype=np.int64)
            if arr.min() < 0 or arr.max() > 65535:
                raise ImageError(path, f"32-bit integer grey values outside 0..65535 "
                                       f"(range {arr.min()}..{arr.max()}) are not supported")
            pixels = arr.astype(np.uint16)
        elif mode == "F":  # floating-point grey: taken as luminance in [0, 1]
            arr = np.asarray(img, dtype=np.float64)
            if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
                raise ImageError(path, f"floating-point grey values must lie in [0, 1], "
                                       f"got range {np.nanmin(arr):.4g}..{np.nanmax(arr):.4g}")
            pixels = np.rint(arr * 65535.0).astype(np.uint16)
        elif mode in ("RGBA", "RGBa", "PA") or img.has_transparency_data:
            rgba = np.asarray(img.convert("RGBA"))  # (H, W, 4); P, RGB: transparency info applied
            pixels, alpha = rgba[..., :3].copy(), rgba[..., 3].copy()
        elif mode == "RGB":
            pixels = np.array(img)
        else:  # P, CMYK, YCbCr, RGBX, LAB, HSV, ...
            pixels = np.array(img.convert("RGB"))
    except ValueError as exc:  # Pillow has no conversion for this mode
        raise ImageError(path, f"unsupported image mode {mode!r} ({exc})") from None
    return Picture(pixels, alpha, icc, exif, img.format, mode)


def _raw_mode(img):
    """The raw mode of an opened Pillow image's first tile, e.g. "RGB;16B"; "" if unknown."""
    if not img.tile:
        return ""
    args = img.tile[0].args  # the raw mode, or a tuple starting with it
    rawmode = args[0] if isinstance(args, tuple) and args else args
    return rawmode if isinstance(rawmode, str) else ""


def _is_16bit_colour(img):
    """Whether Pillow would reduce this opened file's samples from 16 to 8 bits (RGB, RGBA, LA)."""
    return img.mode in ("RGB", "RGBA", "LA") and ";16" in _raw_mode(img)


def _read_16bit_colour(path, img):
    """Picture of a 16-bit RGB, RGBA or grey+alpha file, decoded by OpenCV."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # no EXIF rotation with IMREAD_UNCHANGED
    except cv2.error as exc:
        raise ImageError(path, f"corrupt or truncated image (OpenCV: {getattr(exc, 'err', exc)})") from None
    if arr is None or arr.ndim != 3 or arr.dtype != np.uint16 or arr.shape[2] not in (3, 4):
        raise ImageError(path, "corrupt or truncated image (OpenCV could not decode its 16-bit samples)")
    if img.format == "PNG":  # the eXIf chunk may follow the pixels: found by walking the chunks
        exif = png_exif(path)
    else:
        exif = img.getexif()
    orientation = exif.get(0x0112, 1) if exif is not None else 1
    if img.format == "TIFF" and orientation != 1:
        arr = _agree_with_pillow(path, img, arr, orientation)
    else:  # OpenCV applies no orientation to a PNG read with IMREAD_UNCHANGED
        arr = orient(arr, orientation)
    alpha = arr[..., 3].copy() if arr.shape[2] == 4 else None
    if _raw_mode(img).startswith("LA"):  # grey+alpha (Pillow: "RGBA"); OpenCV replicates grey in B, G, R
        pixels = arr[..., 0].copy()
    else:
        pixels = np.ascontiguousarray(arr[..., 2::-1])  # BGR -> RGB
    icc = img.info.get("icc_profile") or None
    return Picture(pixels, alpha, icc, clean_exif(exif, path), img.format, img.mode)


def _agree_with_pillow(path, img, arr, orientation):
    """OpenCV's 16-bit TIFF pixels (H, W, C) as displayed, checked against Pillow's 8-bit decode.

    OpenCV applies a TIFF's orientation to some 16-bit files itself, even with
    ``IMREAD_UNCHANGED``; Pillow decodes the same file to 8 bits. Of OpenCV's
    pixels as they are and with the orientation applied, the one that
    matches Pillow's oriented 8-bit pixels is kept.
    """
    from PIL import ImageOps  # lazy: --help stays fast

    with img:
        img.load()
        ref = np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=np.int32)  # (H, W, 3)
    for cand in (orient(arr, orientation), arr):
        rgb = cand[..., 2::-1] if cand.shape[2] >= 3 else cand
        if rgb.shape[:2] == ref.shape[:2] and np.abs((rgb.astype(np.int32) >> 8) - ref).max() <= 1:
            return np.ascontiguousarray(cand)
    raise ImageError(path, "corrupt image (OpenCV's 16-bit pixels and Pillow's 8-bit pixels of this TIFF "
                           "disagree; cannot tell which is right)")


def read_image(path, max_pixels=MAX_PIXELS):
    """Read an image as an array, EXIF orientation applied.

    Parameters
    ----------
    path : str or Path
        Any file Pillow can open.
    max_pixels : int or None, optional
        Refuse larger images (see `read_picture`).

    Returns
    -------
    image : ndarray
        ``(H, W)`` for grey modes, ``(H, W, 3)`` RGB otherwise; uint8, or
        uint16 for 16-bit grey and 16-bit RGB files. Palette, CMYK, YCbCr, LA
        and RGBA images are converted to RGB or grey explicitly (alpha is
        dropped). `read_picture` also returns the alpha channel and metadata.

    Raises
    ------
    ImageError
        Missing, empty, unreadable, truncated, non-image or too large files.
    """
    return read_picture(path, max_pixels).pixels


def read_rgb_u8(path):
    """Read an image as uint8 RGB ``(H, W, 3)`` (grey replicated, 16-bit reduced)."""
    image = read_image(path)
    if image.dtype == np.uint16:
        image = u16_to_u8(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image
