"""Writing image files, with the alpha, ICC profile and EXIF data of the picture they were made from.

Every file is encoded in memory, then written with
`deepcolor.files.atomic_write_bytes`: a killed process leaves no partial file.
"""

import logging
import struct
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np

from deepcolor.files import atomic_write_bytes
from deepcolor.images.formats import IMAGE_EXTENSIONS, OUTPUT_FORMATS
from deepcolor.images.picture import Picture, icc_colour_space, u16_to_u8
from deepcolor.images.png import encode_png
from deepcolor.images.tiff import encode_tiff

log = logging.getLogger(__name__)

JPEG_QUALITY = 95


def encode_image(image, suffix):
    """Encode a uint8/uint16 grey or RGB array to bytes in the format of `suffix`.

    PNG is written by `deepcolor.images.png.encode_png`, JPEG by OpenCV at
    quality 95 (as `write_picture`), the other formats by OpenCV.
    """
    image = np.asarray(image)
    suffix = suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise ValueError(f"cannot write images with suffix {suffix!r}; use one of {IMAGE_EXTENSIONS}")
    if suffix == ".png":
        return encode_png(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # OpenCV's order; one pass on OpenCV's threads
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix in (".jpg", ".jpeg") else []
    try:
        ok, buf = cv2.imencode(suffix, image, params)
    except cv2.error as exc:
        raise ValueError(f"OpenCV could not encode a {image.dtype} {image.shape} image as {suffix}: {exc}") from None
    if not ok:
        raise ValueError(f"OpenCV could not encode an image as {suffix}")
    return buf.tobytes()


def write_image(path, image):
    """Encode `image` by the suffix of `path` and write it atomically."""
    path = Path(path)
    atomic_write_bytes(path, encode_image(image, path.suffix))


def write_picture(path, rgb, source=None, root=None):
    """Write an RGB image, with the alpha, ICC profile and EXIF data of `source`.

    Parameters
    ----------
    path : str or Path
        Output file; its suffix (one of `IMAGE_EXTENSIONS`, any case) picks
        the format, see `OUTPUT_FORMATS`.
    rgb : ndarray of shape (H, W, 3), uint8 or uint16
        The pixels. uint16 is written with 16 bits per sample to PNG and TIFF,
        and rounded to 8 bits, ``(v * 255 + 32767) // 65535``, for JPEG, BMP
        and WebP.
    source : Picture, optional
        The picture `rgb` was made from. Its alpha channel (same rows and
        columns as `rgb`; rescaled to the output's bit depth) is written where
        the format holds one and otherwise dropped with a logged warning. Its
        ICC profile is written where the format holds one and the profile
        describes an RGB colour space (a grey or CMYK profile cannot describe
        RGB output and is dropped, logged at debug level). Its EXIF data are
        written where the format holds them.
    root : str or Path, optional
        Write only inside this folder, following no symlink below it (see
        `atomic_write_bytes`).

    Raises
    ------
    ValueError
        An unknown suffix, `rgb` not of shape (H, W, 3), or an alpha channel
        whose shape differs from the rows and columns of `rgb`.
    TypeError
        `rgb` not uint8 or uint16, or `source` not a Picture.
    OSError
        If the file cannot be written; no partial file is left.

    Notes
    -----
    The file is encoded in memory, then written with `atomic_write_bytes`.
    PNG is encoded by `deepcolor.images.png.encode_png` (up filter, zlib
    level 1 with run-length matching, segments on OpenCV's threads: its
    measurements are in that module), at both bit depths, with the iCCP and
    eXIf chunks. Earlier, on a 3000 x 2000 photo, OpenCV's default took 0.41 s
    for 8.8 MB, Pillow's compress_level=1 1.35 s for 10.1 MB (15% larger) and
    its default level 6 6.3 s for 8.7 MB. JPEG is encoded by OpenCV at
    quality 95 with 4:2:0 chroma subsampling (Pillow's default at that
    quality), the APP1 (EXIF) and APP2 (ICC) segments inserted after its
    APP0: the same pixels as Pillow's encoder (both libjpeg-turbo, decoded
    identical on the 200 BSDS500 outputs and a 12-megapixel one) in 0.034 to
    0.039 s instead of 0.056 to 0.080 s at 12 megapixels (Pillow first copies
    RGB into its 4-byte layout), 0.12 against 0.15 to 0.17 s for the 200
    photos; the optimized Huffman tables (either library) saved 4 to 9% of
    the size for 2 to 3 times the time and are not used. TIFF is written with
    Pillow's TIFF directory writer (Pillow cannot hold 16-bit RGB images) and
    zlib level 1 with the horizontal predictor: 16-bit, 0.77 s for 12.4 MB,
    against 1.45 s for 14.0 MB with OpenCV's LZW and 6.8 s for 11.1 MB at zlib
    level 6.
    """
    path = Path(path)
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write images with suffix {path.suffix!r}; use one of {IMAGE_EXTENSIONS}")
    rgb = np.asarray(rgb)
    if rgb.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"rgb dtype must be uint8 or uint16, got {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
    if source is not None and not isinstance(source, Picture):
        raise TypeError(f"source must be a Picture or None, got {type(source).__name__}")
    if rgb.dtype == np.uint16 and 16 not in fmt.bit_depths:
        rgb = u16_to_u8(rgb)

    alpha = icc = exif = None
    if source is not None:
        alpha = _output_alpha(path, fmt, rgb, source.alpha)
        icc = _output_icc(path, fmt, source.icc_profile)
        exif = _output_exif(path, fmt, source.exif)

    if fmt.name == "PNG":  # the TIFF structure, without the "Exif\0\0" of JPEG's APP1
        data = encode_png(rgb if alpha is None else np.dstack([rgb, alpha]), icc, exif and exif[6:])
    elif fmt.name == "JPEG":
        data = _encode_jpeg(rgb, icc, exif)
    elif fmt.name == "TIFF":
        data = encode_tiff(rgb, alpha, icc, exif, path)
    else:
        data = _encode_pillow(fmt.name, rgb, alpha, icc, exif)
    atomic_write_bytes(path, data, root)


def _output_alpha(path, fmt, rgb, alpha):
    if alpha is None:
        return None
    alpha = np.asarray(alpha)
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha of shape {alpha.shape} does not match rgb of shape {rgb.shape}")
    if not fmt.alpha:
        log.warning("%s: %s holds no alpha channel; the transparency of the input is dropped", path, fmt.name)
        return None
    if alpha.dtype == rgb.dtype:
        return alpha
    if alpha.dtype == np.uint8 and rgb.dtype == np.uint16:
        return alpha.astype(np.uint16) * 257  # 255 -> 65535
    if alpha.dtype == np.uint16 and rgb.dtype == np.uint8:
        return u16_to_u8(alpha)
    raise TypeError(f"alpha dtype must be uint8 or uint16, got {alpha.dtype}")


def _output_icc(path, fmt, icc):
    if not icc:
        return None
    if not fmt.icc:
        log.debug("%s: %s holds no ICC profile; the input's profile is dropped", path, fmt.name)
        return None
    space = icc_colour_space(icc)
    if space != "RGB":
        log.debug("%s: the input's ICC profile describes %r, not RGB; dropped", path, space)
        return None
    return bytes(icc)


def _output_exif(path, fmt, exif):
    if not exif:
        return None
    if not fmt.exif:
        log.debug("%s: %s holds no EXIF data; the input's EXIF is dropped", path, fmt.name)
        return None
    exif = bytes(exif)
    if not exif.startswith(b"Exif\x00\x00"):
        exif = b"Exif\x00\x00" + exif  # bare TIFF-structured EXIF
    if fmt.name == "JPEG" and len(exif) > 65533:  # one APP1 segment: 65535 bytes with its length
        log.warning("%s: EXIF data of %d bytes do not fit in a JPEG APP1 segment; dropped", path, len(exif))
        return None
    return exif


def _encode_pillow(name, rgb, alpha, icc, exif):
    """BMP or WebP bytes of 8-bit RGB(A), through Pillow."""
    from PIL import Image  # lazy: --help stays fast

    img = Image.fromarray(rgb if alpha is None else np.dstack([rgb, alpha]))  # RGB or RGBA
    options = {}
    if icc:
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    if name == "WEBP":
        # exact: keep RGB under transparent pixels. In lossless mode quality is
        # the effort; on a 1500 x 1000 photo Pillow's default (quality 80, method
        # 4) took 3.5 s for 2.07 MB, quality 25 / method 1 0.86 s for 2.11 MB,
        # quality 0 / method 0 0.13 s for 2.36 MB (14% larger).
        options.update(lossless=True, exact=True, quality=25, method=1)
    buf = BytesIO()
    img.save(buf, format=name, **options)
    return buf.getvalue()


def _jpeg_segment(marker, payload):
    """A JPEG marker segment: 0xFF, marker, 2-byte length (counting itself), payload."""
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


ICC_CHUNK = 65519  # ICC bytes per APP2 segment: 65535 - 2 (length) - 14 ("ICC_PROFILE\0", number, count)


def _encode_jpeg(rgb, icc, exif):
    """JPEG bytes of 8-bit RGB by OpenCV, with EXIF (APP1) and ICC profile (APP2) segments.

    The segments follow OpenCV's JFIF APP0 (or SOI), as Pillow places them; an
    ICC profile longer than one segment is split, numbered from 1 (ICC.1,
    annex B.4).
    """
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.dtype} {rgb.shape} image as JPEG")
    jpeg = buf.tobytes()
    if not icc and not exif:
        return jpeg
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("OpenCV wrote a JPEG that does not start with SOI")
    at = 2
    if jpeg[2:4] == b"\xff\xe0":  # APP0 (JFIF) first, as its standard asks
        at = 4 + struct.unpack(">H", jpeg[4:6])[0]
    segments = [_jpeg_segment(0xE1, exif)] if exif else []  # exif starts with "Exif\0\0"
    if icc:
        parts = [icc[i:i + ICC_CHUNK] for i in range(0, len(icc), ICC_CHUNK)]
        if len(parts) > 255:
            log.warning("ICC profile of %d bytes does not fit in 255 JPEG APP2 segments; dropped", len(icc))
            parts = []
        segments += [_jpeg_segment(0xE2, b"ICC_PROFILE\x00" + bytes((i, len(parts))) + part)
                     for i, part in enumerate(parts, 1)]
    return jpeg[:at] + b"".join(segments) + jpeg[at:]
