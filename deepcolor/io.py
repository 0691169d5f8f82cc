"""Reading and writing images and files: explicit mode handling, metadata, atomic writes.

Every error raised for a bad input file is an `ImageError` whose message
starts with the path, so a batch can log one clear line per bad file and go
on. `read_picture` and `write_picture` carry what a colorized copy should keep
from its input: bit depth, transparency, ICC profile and EXIF data.

Pillow and OpenCV are imported inside the functions that need them, so that
importing this module (e.g. for ``--help``) stays fast.
"""

import contextlib
import errno
import logging
import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from io import BytesIO
from numbers import Integral
from pathlib import Path
from types import MappingProxyType

import numpy as np

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

#: Suffixes of the files taken from a folder: what `read_picture` reads given
#: one by one (Pillow's readable formats, without those that need an outside
#: program or are only stubs: EPS, WMF, HDF5, GRIB, BUFR, MPEG).
INPUT_EXTENSIONS = IMAGE_EXTENSIONS + (
    ".jpe", ".jfif", ".jif", ".dib", ".gif", ".apng", ".pbm", ".pgm", ".ppm", ".pnm", ".pfm", ".jp2", ".j2k",
    ".j2c", ".jpc", ".jpf", ".jpx", ".tga", ".icb", ".vda", ".vst", ".pcx", ".sgi", ".rgb", ".rgba", ".bw",
    ".ico", ".cur", ".icns", ".psd", ".qoi", ".dds", ".blp", ".ftc", ".ftu", ".im", ".msp", ".xbm", ".xpm",
    ".ras", ".dcx", ".fli", ".flc", ".gbr", ".pxr", ".pcd", ".mpo", ".iim", ".fits", ".fit", ".avif",
)

# Default limit against decompression bombs: an image whose header declares
# more pixels is refused with an ImageError before any pixel is decoded.
MAX_PIXELS = 200_000_000


def display_path(path):
    """A path as one line of text: control and undecodable characters escaped.

    A file name may hold a newline, a terminal escape or bytes that are not
    UTF-8; printed raw, it would split an error line in two or change the
    terminal. Such characters (and then backslashes too, so the escaping is
    unambiguous) are written as Python escapes (``\\n``, ``\\x1b``,
    ``\\xff`` for an undecodable byte). Other paths are returned unchanged.
    """
    import unicodedata

    text = os.fsdecode(os.fspath(path))
    if text.isprintable():
        return text
    out = []
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif ch == " " or unicodedata.category(ch)[0] not in "CZ":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


class ImageError(Exception):
    """A file that cannot be used as an image; the message names the file and the problem."""

    def __init__(self, path, problem):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{display_path(path)}: {problem}")

    def __reduce__(self):  # survives pickling between worker processes
        return (type(self), (str(self.path), self.problem))


@dataclass(frozen=True)
class OutputFormat:
    """What an output file format can hold, as `write_picture` writes it.

    Attributes
    ----------
    name : str
        Pillow's name of the format ("PNG", "JPEG", ...).
    alpha : bool
        Whether an alpha channel is written.
    bit_depths : tuple of int
        Bits per sample written: ``(8,)`` or ``(8, 16)``.
    icc : bool
        Whether an ICC profile is written.
    exif : bool
        Whether EXIF data are written.
    lossless : bool
        Whether pixels (of a bit depth it holds) come back exactly.
    """

    name: str
    alpha: bool
    bit_depths: tuple
    icc: bool
    exif: bool
    lossless: bool


_PNG = OutputFormat("PNG", alpha=True, bit_depths=(8, 16), icc=True, exif=True, lossless=True)
_JPEG = OutputFormat("JPEG", alpha=False, bit_depths=(8,), icc=True, exif=True, lossless=False)
_TIFF = OutputFormat("TIFF", alpha=True, bit_depths=(8, 16), icc=True, exif=True, lossless=True)

#: Output suffix (lower case) -> what `write_picture` writes in that format.
#: PNG: OpenCV's encoder (default zlib settings), iCCP and eXIf chunks added.
#: JPEG: quality 95 (Pillow's default 4:2:0 chroma subsampling).
#: TIFF: Adobe deflate (zlib level 1) with horizontal-differencing predictor,
#: unassociated alpha (ExtraSamples = 2), ICC tag 34675, EXIF tags in IFD 0.
#: BMP: 8-bit RGB only. WebP: lossless (effort: quality 25, method 1), 8-bit,
#: alpha kept exactly.
OUTPUT_FORMATS = MappingProxyType({
    ".png": _PNG,
    ".jpg": _JPEG,
    ".jpeg": _JPEG,
    ".tif": _TIFF,
    ".tiff": _TIFF,
    ".bmp": OutputFormat("BMP", alpha=False, bit_depths=(8,), icc=False, exif=False, lossless=True),
    ".webp": OutputFormat("WEBP", alpha=True, bit_depths=(8,), icc=True, exif=True, lossless=True),
})


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
        return _icc_colour_space(self.icc_profile)

    @property
    def icc_is_rgb(self):
        """bool: whether there is an ICC profile and it describes an RGB colour space."""
        return self.icc_colour_space == "RGB"


def find_images(root, problems=None, ignored=None):
    """Image files under `root`, recursively, sorted; `root` itself if it is a file.

    Parameters
    ----------
    root : str or Path
        A file or a folder.
    problems : list, optional
        Receives a one-line message (path escaped) for each thing found but
        not searched: a sub-folder that cannot be read, a symlink to a
        folder (not followed). Without it these are logged as warnings.
    ignored : list, optional
        Receives ``(path, reason)`` for every other file not taken (not an
        image by its name nor by its first bytes; hidden) and every hidden
        folder (not searched).

    Returns
    -------
    paths : list of Path
        Files whose suffix is in `INPUT_EXTENSIONS` (case-insensitive), and
        files of another name whose first bytes are an image signature
        (`sniff_format`). Hidden files and folders (names starting with '.')
        are skipped. A file given directly is returned whatever its suffix,
        so that reading it reports the real problem.

    Raises
    ------
    ImageError
        If `root` does not exist.
    """
    import stat

    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        if root.exists():
            raise ImageError(root, "not a regular file or a folder (a FIFO, a device?)")
        raise ImageError(root, "no such file or folder")

    def problem(message):
        if problems is None:
            log.warning("%s", message)
        else:
            problems.append(message)

    def unreadable(exc):
        problem(f"{display_path(exc.filename)}: cannot read the folder ({exc.strerror or exc}); "
                f"its files are not colorized")

    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        for d in sorted(dirnames):
            if not d.startswith(".") and os.path.islink(os.path.join(dirpath, d)):
                problem(f"{display_path(Path(dirpath) / d)}: a symlink to a folder, not followed; "
                        f"give the folder it points to as IN to colorize it")
        if ignored is not None:
            ignored.extend((Path(dirpath) / d, "a hidden folder (its name starts with '.'); not searched")
                           for d in sorted(dirnames) if d.startswith("."))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                if ignored is not None:
                    ignored.append((Path(dirpath) / name, "a hidden file (its name starts with '.')"))
                continue
            path = Path(dirpath) / name
            if Path(name).suffix.lower() in INPUT_EXTENSIONS:
                found.append(path)
                continue
            try:  # another name: an image if its first bytes say so (a regular file only: a FIFO would block)
                is_image = stat.S_ISREG(os.stat(path).st_mode) and sniff_format(path) is not None
            except OSError:
                is_image = False
            if is_image:
                found.append(path)
            elif ignored is not None:
                ignored.append((path, "not an image file (by its name and first bytes)"))
    return sorted(found)


# --- reading -----------------------------------------------------------------

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
    from PIL import Image

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


def _check_max_pixels(max_pixels):
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, Integral) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int or None (no limit), got {max_pixels!r}")
    return int(max_pixels)


def _check_file(path):
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file")
    if not path.exists():
        raise ImageError(path, "no such file")
    import stat

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
    max_pixels = _check_max_pixels(max_pixels)
    path = Path(path)
    _check_file(path)
    from PIL import Image, ImageOps, UnidentifiedImageError

    with _pillow_bomb_check_off():
        try:
            with Image.open(path) as img:  # lazy: reads the header only
                width, height = img.size
                n = width * height
                if max_pixels is not None and n > max_pixels:
                    raise ImageError(path, f"image of {width} x {height} = {n:,} pixels exceeds the limit "
                                           f"of {max_pixels:,} pixels (setting max_pixels, --max-pixels)")
                if img.format == "TIFF":  # tifffile first: Pillow scrambles raw TIFFs of orientation 5..8
                    picture = _read_tiff(path, img)
                    if picture is not None:
                        return picture
                if _is_16bit_colour(img):
                    return _read_16bit_colour(path, img)
                img.load()
                ImageOps.exif_transpose(img, in_place=True)
                picture = _picture_from_pillow(path, img)
                if img.format in ("JPEG", "MPO"):
                    picture.notes = _jpeg_warnings(path)
                picture.notes += _frames_note(path, img)
                return picture
        except PermissionError:
            raise ImageError(path, "permission denied") from None
        except UnidentifiedImageError as exc:
            return _read_fallback(path, max_pixels, exc)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            reason = _diagnose(path)
            raise ImageError(path, f"corrupt or truncated image ({reason + '; Pillow: ' if reason else ''}{exc})") \
                from None


# File signatures of the formats some decoder here reads, to say what a file
# that Pillow cannot identify was meant to be.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"), (b"\xffO\xffQ", "JPEG 2000"),
)


def sniff_format(path):
    """The image format a file's first bytes announce ("PNG", "JPEG", "TIFF", ...), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    return None


def _diagnose_png(path):
    """Why a PNG is unreadable: its header, a chunk cut short or with a bad CRC; None if none is found."""
    data = Path(path).read_bytes()
    pos, first = 8, True
    while True:
        if pos + 8 > len(data):
            return f"truncated PNG: it ends after {len(data)} bytes, without its IEND chunk"
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        name = kind.decode("latin-1")
        if first and kind != b"IHDR":
            return "corrupt PNG: it does not start with an IHDR chunk"
        if pos + 12 + length > len(data):
            return f"truncated PNG: it ends inside its {name!r} chunk (file of {len(data)} bytes)"
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]:
            return f"corrupt PNG: bad checksum (CRC) of its {name!r} chunk"
        if first:
            width, height = struct.unpack(">II", body[:8])
            if width == 0 or height == 0:
                return f"corrupt PNG: its header declares {width} x {height} pixels"
        if kind == b"IEND":
            return None
        pos, first = pos + 12 + length, False


def _jpeg_frame(path):
    """(SOF marker, sample precision, rows, columns) of a JPEG's frame header, or None if it has none."""
    data = Path(path).read_bytes()
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                return None
            precision = data[pos + 4]
            rows, cols = struct.unpack(">HH", data[pos + 5:pos + 9])
            return marker, precision, rows, cols
        if marker == 0xDA:  # start of scan before any frame header
            return None
        pos += 2 + length
    return None


def _diagnose_jpeg(path):
    """Why a JPEG is unreadable (lossless, 12-bit, arithmetic coding, cut short); None if none is found."""
    frame = _jpeg_frame(path)
    if frame is None:
        return "corrupt or truncated JPEG: no frame header (SOF) before the data ends"
    marker, precision, rows, cols = frame
    if marker in (0xC3, 0xC7, 0xCB, 0xCF):
        return (f"lossless JPEG (SOF{marker - 0xC0}, {precision}-bit), which neither Pillow nor OpenCV "
                f"(libjpeg) decodes here; convert it to PNG or TIFF")
    if precision != 8:
        return (f"{precision}-bit JPEG (SOF{marker - 0xC0}), which neither Pillow nor OpenCV (8-bit libjpeg) "
                f"decodes here; convert it to a 16-bit PNG or TIFF")
    if marker in (0xC9, 0xCA):
        return "arithmetic-coded JPEG, which the decoders here do not read"
    if rows == 0 or cols == 0:
        return f"corrupt JPEG: its header declares {cols} x {rows} pixels"
    if not Path(path).read_bytes().rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "truncated JPEG: the data end before the end-of-image marker"
    return None


def _diagnose(path):
    """What is wrong with a PNG or JPEG file that failed to decode, from its structure; None if not found."""
    kind = sniff_format(path)
    try:
        return {"PNG": _diagnose_png, "JPEG": _diagnose_jpeg}[kind](path) if kind in ("PNG", "JPEG") else None
    except (OSError, struct.error):
        return None


def _read_fallback(path, max_pixels, exc):
    """A file Pillow cannot identify: read it with OpenCV or tifffile, or say what it is and why it fails."""
    kind = sniff_format(path)
    if kind is None:
        raise ImageError(path, "not an image file that Pillow can read")
    try:
        reason = {"PNG": _diagnose_png, "JPEG": _diagnose_jpeg}.get(kind, lambda p: None)(path)
    except OSError as err:
        raise ImageError(path, f"unreadable file ({err.strerror or err})") from None
    # Another decoder is tried where the structure shows no fault, or only a bad
    # checksum of an ancillary PNG chunk (text, time, ...; its name starts in
    # lower case), which libpng skips: the pixels are intact.
    ancillary = reason is not None and re.match(r"corrupt PNG: bad checksum \(CRC\) of its '[a-z]", reason)
    picture, detail, decoder = None, None, "tifffile" if kind == "TIFF" else "OpenCV"
    if reason is None or ancillary:
        try:
            picture = _read_tiff_alone(path, max_pixels) if kind == "TIFF" else _read_opencv(path, kind, max_pixels)
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


def _check_size(path, width, height, max_pixels):
    n = int(width) * int(height)
    if max_pixels is not None and n > max_pixels:
        raise ImageError(path, f"image of {width} x {height} = {n:,} pixels exceeds the limit "
                               f"of {max_pixels:,} pixels (setting max_pixels, --max-pixels)")


def _read_opencv(path, kind, max_pixels):
    """Picture decoded by OpenCV (a file Pillow cannot read); None if OpenCV cannot either."""
    import cv2

    if kind == "PNG":
        with open(path, "rb") as fh:
            head = fh.read(24)
        if len(head) == 24 and head[12:16] == b"IHDR":
            _check_size(path, *struct.unpack(">II", head[16:24]), max_pixels)
    elif kind == "JPEG":
        frame = _jpeg_frame(path)
        if frame is not None:
            _check_size(path, frame[3], frame[2], max_pixels)
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
    exif = _png_exif(path) if kind == "PNG" else None
    if exif is not None:
        arr = _orient(arr, exif.get(0x0112, 1))
    alpha = None
    if arr.ndim == 3 and arr.shape[2] == 4:
        alpha, arr = arr[..., 3].copy(), arr[..., :3]
    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr[..., ::-1])  # BGR -> RGB
    return Picture(arr, alpha, None, _clean_exif(exif, path), kind, "OpenCV")


def _read_tiff_alone(path, max_pixels):
    """Picture of a TIFF that Pillow cannot open, decoded by tifffile; None if it cannot either."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            _check_size(path, page.imagewidth, page.imagelength, max_pixels)
            tags = {int(t.code): t.value for t in page.tags.values()}
    except ImageError:
        raise
    except Exception:  # tifffile's own errors and others: not readable by it either
        return None

    class _Header:  # what _read_tiff takes from Pillow: the EXIF orientation and the ICC profile
        format, mode, info = "TIFF", "tifffile", {"icc_profile": tags.get(34675)}

        @staticmethod
        def getexif():
            from PIL import Image

            exif = Image.Exif()
            if 274 in tags:
                exif[0x0112] = int(tags[274])
            return exif

    return _read_tiff(path, _Header)


def _frames_note(path, img):
    """A note (logged) when a file holds several frames or pages: the first alone is colorized."""
    try:
        n = int(getattr(img, "n_frames", 1))
    except (TypeError, ValueError, OSError, EOFError):
        return ()
    if img.format == "MPO" or n <= 1:  # an MPO's second frame is the stereo pair or a preview
        return ()
    note = f"{n} frames or pages; the first alone is colorized"
    log.warning("%s: %s", display_path(path), note)
    return (note,)


def _jpeg_warnings(path):
    """libjpeg's warnings about a JPEG's data ("Corrupt JPEG data: ..."), each logged; () if none.

    Pillow decodes a JPEG whose entropy-coded data are damaged without a
    word (libjpeg fills what it cannot decode). OpenCV's libjpeg prints its
    warnings on the process's stderr: the file is decoded again at 1/8 scale
    (every coefficient is still entropy-decoded: 20 ms for 12 megapixels)
    with file descriptor 2 captured, and the warnings are returned.
    """
    import sys
    import tempfile

    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            try:
                cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8)
            except cv2.error:
                pass
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read(4096).decode("utf-8", "replace")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if "JPEG" in line or "Huffman" in line or "marker" in line:
            found.append(f"damaged JPEG data (libjpeg: {line}); the picture is colorized as decoded")
    for note in found:
        log.warning("%s: %s", display_path(path), note)
    return tuple(found)


def _picture_from_pillow(path, img):
    """Picture from an opened, loaded and oriented Pillow image."""
    mode = img.mode
    icc = img.info.get("icc_profile") or None
    exif = _clean_exif(img.getexif(), path)
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
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # no EXIF rotation with IMREAD_UNCHANGED
    except cv2.error as exc:
        raise ImageError(path, f"corrupt or truncated image (OpenCV: {getattr(exc, 'err', exc)})") from None
    if arr is None or arr.ndim != 3 or arr.dtype != np.uint16 or arr.shape[2] not in (3, 4):
        raise ImageError(path, "corrupt or truncated image (OpenCV could not decode its 16-bit samples)")
    if img.format == "PNG":  # the eXIf chunk may follow the pixels: found by walking the chunks
        exif = _png_exif(path)
    else:
        exif = img.getexif()
    orientation = exif.get(0x0112, 1) if exif is not None else 1
    if img.format == "TIFF" and orientation != 1:
        arr = _agree_with_pillow(path, img, arr, orientation)
    else:  # OpenCV applies no orientation to a PNG read with IMREAD_UNCHANGED
        arr = _orient(arr, orientation)
    alpha = arr[..., 3].copy() if arr.shape[2] == 4 else None
    if _raw_mode(img).startswith("LA"):  # grey+alpha (Pillow: "RGBA"); OpenCV replicates grey in B, G, R
        pixels = arr[..., 0].copy()
    else:
        pixels = np.ascontiguousarray(arr[..., 2::-1])  # BGR -> RGB
    icc = img.info.get("icc_profile") or None
    return Picture(pixels, alpha, icc, _clean_exif(exif, path), img.format, img.mode)


def _png_exif(path):
    """The EXIF tags (a Pillow ``Image.Exif``) of a PNG's eXIf chunk, wherever it is; None if none.

    Only the chunk headers are read (each chunk's data is skipped by seeking),
    so a large image is not decoded to find an eXIf chunk after its pixels.
    """
    from PIL import Image

    with open(path, "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I", head[:4])[0], head[4:]
            if kind == b"eXIf":
                data = fh.read(length)
                if len(data) < length:
                    return None
                exif = Image.Exif()
                try:
                    exif.load(data if data.startswith(b"Exif") else b"Exif\x00\x00" + data)
                except (SyntaxError, ValueError, OSError, struct.error):
                    log.warning("%s: unreadable EXIF data in its eXIf chunk; ignored", display_path(path))
                    return None
                return exif
            if kind == b"IEND":
                return None
            fh.seek(length + 4, os.SEEK_CUR)  # data and CRC


def _agree_with_pillow(path, img, arr, orientation):
    """OpenCV's 16-bit TIFF pixels (H, W, C) as displayed, checked against Pillow's 8-bit decode.

    OpenCV applies a TIFF's orientation to some 16-bit files itself, even with
    ``IMREAD_UNCHANGED``; Pillow decodes the same file to 8 bits. Of OpenCV's
    pixels as they are and with the orientation applied, the one that
    matches Pillow's oriented 8-bit pixels is kept.
    """
    from PIL import ImageOps

    with img:
        img.load()
        ref = np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=np.int32)  # (H, W, 3)
    for cand in (_orient(arr, orientation), arr):
        rgb = cand[..., 2::-1] if cand.shape[2] >= 3 else cand
        if rgb.shape[:2] == ref.shape[:2] and np.abs((rgb.astype(np.int32) >> 8) - ref).max() <= 1:
            return np.ascontiguousarray(cand)
    raise ImageError(path, "corrupt image (OpenCV's 16-bit pixels and Pillow's 8-bit pixels of this TIFF "
                           "disagree; cannot tell which is right)")


def _read_tiff(path, img):
    """Picture of a TIFF decoded by tifffile (pixels as stored), oriented here; None to leave it to Pillow.

    tifffile reads what Pillow reads wrongly or not at all: raw files of
    orientation 5..8 (Pillow 13 swaps their size and scrambles the rows),
    16-bit grey+alpha, 16-bit colour (kept 16-bit), floating-point and signed
    samples. Compressions it lacks without imagecodecs (LZW, JPEG), palette,
    CMYK, YCbCr, bilevel and inverted-grey files are left to Pillow (None).
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            photometric, samples = int(page.photometric), int(page.samplesperpixel)
            extra = tuple(int(e) for e in (page.extrasamples or ()))
            if photometric not in (1, 2) or page.bitspersample not in (8, 16, 32, 64) \
                    or int(page.compression) not in tifffile.TIFF.DECOMPRESSORS:
                return None
            if (photometric == 1 and samples not in (1, 2)) or (photometric == 2 and samples not in (3, 4)):
                return None
            if samples in (2, 4) and extra[:1] == (1,) and page.dtype == np.uint8:
                return None  # associated (premultiplied) 8-bit alpha: Pillow un-multiplies it
            arr = page.asarray()
            if int(page.planarconfig) == 2 and arr.ndim == 3 and samples > 1:
                arr = np.moveaxis(arr, 0, -1)
            n_pages = len(tif.pages)
    except ImageError:
        raise
    except Exception as exc:  # tifffile's own errors, zlib.error, ...: Pillow tries and says what is wrong
        log.debug("%s: tifffile cannot read it (%s: %s); Pillow tries", display_path(path), type(exc).__name__, exc)
        return None
    arr = _tiff_samples(path, arr)
    exif = img.getexif()
    arr = _orient(arr, exif.get(0x0112, 1))
    alpha = None
    if samples in (2, 4):
        alpha = arr[..., -1].copy()
        arr = arr[..., :-1]
        if extra[:1] == (1,):  # associated alpha: colour premultiplied by it
            top = np.iinfo(arr.dtype).max
            scaled = arr.astype(np.float64) * top / np.maximum(alpha, 1)[..., None]
            arr = np.clip(np.rint(scaled), 0, top).astype(arr.dtype)
    pixels = np.ascontiguousarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    icc = img.info.get("icc_profile") or None
    notes = ()
    if n_pages > 1:
        notes = (f"{n_pages} frames or pages; the first alone is colorized",)
        log.warning("%s: %s", display_path(path), notes[0])
    return Picture(pixels, alpha, icc, _clean_exif(exif, path), img.format, img.mode, notes)


def _tiff_samples(path, arr):
    """A TIFF's samples as uint8 or uint16: unsigned 8/16-bit kept, 32-bit unsigned and float converted, or refused."""
    dt = arr.dtype
    if dt in (np.uint8, np.uint16):
        return arr
    if dt.kind == "f":
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
            what = "grey" if arr.ndim == 2 else "colour"
            raise ImageError(path, f"floating-point {what} values must lie in [0, 1] ({8 * dt.itemsize}-bit), "
                                   f"got range {np.nanmin(arr):.4g}..{np.nanmax(arr):.4g}")
        return np.rint(arr.astype(np.float64) * 65535.0).astype(np.uint16)
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if 0 <= lo and hi <= 65535:  # integer samples within 16 bits (as Pillow's mode "I" was read)
        return arr.astype(np.uint16)
    kind = "signed" if dt.kind == "i" else "unsigned"
    what = "grey" if arr.ndim == 2 else "colour"
    raise ImageError(path, f"{kind} {8 * dt.itemsize}-bit integer {what} values outside 0..65535 "
                           f"(range {lo}..{hi}) are not supported: deepcolor reads 8- and 16-bit samples, "
                           f"or floating-point samples in [0, 1]")


def _orient(arr, orientation):
    """Rows and columns of `arr` (H, W, ...) as displayed for an EXIF Orientation 1..8.

    The same transposes as Pillow's ``ImageOps.exif_transpose``.
    """
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = arr.swapaxes(0, 1)
    elif orientation == 6:
        arr = arr.swapaxes(0, 1)[:, ::-1]  # 90 degrees clockwise
    elif orientation == 7:
        arr = arr[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        arr = arr.swapaxes(0, 1)[::-1]  # 90 degrees counter-clockwise
    return np.ascontiguousarray(arr)


# Tags that describe how a TIFF file stores its pixels (or hold non-EXIF
# metadata: ICC, XMP, IPTC, Photoshop): Pillow lists them in a TIFF's EXIF, but
# they do not describe another file's pixels. The ICC profile is kept apart.
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281, 284,
    288, 289, 290, 291, 292, 293, 317, 320, 321, 322, 323, 324, 325, 330, 332, 338, 339, 340,
    341, 347, 512, 513, 514, 515, 517, 518, 519, 520, 521, 529, 530, 531, 532, 700, 33723,
    34377, 34675, 37724,
})


def _writable_tags(tags, path):
    """The tags (tag -> value) that Pillow can write back; the others dropped with a debug log."""
    from PIL import TiffImagePlugin

    kept = {}
    for tag, value in tags.items():
        try:
            if not isinstance(value, dict):  # nested IFDs are checked tag by tag
                probe = TiffImagePlugin.ImageFileDirectory_v2()
                probe[tag] = value
                probe.tobytes()
        except (ValueError, TypeError, OverflowError, struct.error) as exc:  # read, but not writable
            log.debug("%s: EXIF tag 0x%04X cannot be written back (%s); dropped", path, tag, exc)
            continue
        kept[tag] = value
    return kept


def _exif_tags(exif, path):
    """IFD 0 tags of a Pillow ``Image.Exif`` as tag -> value, the EXIF, GPS and
    interoperability IFDs nested as dicts, without `_TIFF_LAYOUT_TAGS`."""
    from PIL import ExifTags

    tags = {}
    for tag, value in exif.items():
        if tag in _TIFF_LAYOUT_TAGS:
            continue
        if tag in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo):
            value = _writable_tags(exif.get_ifd(tag), path)
            if tag == ExifTags.IFD.Exif and ExifTags.IFD.Interop in value:
                interop = _writable_tags(exif.get_ifd(ExifTags.IFD.Interop), path)
                if interop:
                    value[ExifTags.IFD.Interop] = interop
                else:
                    del value[ExifTags.IFD.Interop]
            if not value:
                continue
        tags[tag] = value
    return _writable_tags(tags, path)


def _clean_exif(exif, path):
    """EXIF bytes (``b"Exif\\x00\\x00"`` and a little-endian TIFF structure) of a
    Pillow ``Image.Exif``: layout tags removed, Orientation 1; None if no tag is left."""
    from PIL import TiffImagePlugin

    if exif is None:
        return None
    tags = _exif_tags(exif, path)
    if not tags:
        return None
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    for tag, value in tags.items():
        ifd[tag] = value
    ifd[0x0112] = 1  # Orientation: applied to the pixels
    try:
        return b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd.tobytes(8)
    except (ValueError, TypeError, OverflowError, struct.error) as exc:
        log.warning("%s: EXIF data cannot be written back (%s); dropped", path, exc)
        return None


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


def to_float(image):
    """uint8/uint16 image to float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    raise TypeError(f"image dtype must be uint8 or uint16, got {image.dtype}")


def _u16_to_u8(image):
    """uint16 to uint8, rounded: round(v * 255 / 65535) in integers."""
    return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def read_rgb_u8(path):
    """Read an image as uint8 RGB ``(H, W, 3)`` (grey replicated, 16-bit reduced)."""
    image = read_image(path)
    if image.dtype == np.uint16:
        image = _u16_to_u8(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image


# --- writing -----------------------------------------------------------------


NAME_MAX = 255  # bytes in one file name (Linux, macOS)


def partial_name_prefix(name):
    """The start of the temporary names of an atomic write of the file `name`: ``.NAME.`` (ends ``.part``).

    A name too long to take the temporary name's 14 extra bytes within
    `NAME_MAX` is shortened, with a hash of the whole name kept: an output
    name of 241 to 255 bytes is written like any other.
    """
    prefix = f".{name}."
    if len(os.fsencode(prefix)) + 13 <= NAME_MAX:  # 8 random hex digits and ".part"
        return prefix
    import hashlib

    digest = hashlib.sha1(os.fsencode(name)).hexdigest()[:10]
    head = os.fsencode(name)[:NAME_MAX - 13 - 14]
    return f".{os.fsdecode(head.decode('utf-8', 'ignore').encode('utf-8'))}~{digest}."


def open_folder(root, parts, create=False):
    """A file descriptor of the folder `root`/`parts`, never following a symlink below `root`.

    Parameters
    ----------
    root : Path
        The folder named by the user (it may itself be a symlink).
    parts : sequence of str
        The folders below it, opened one by one with ``O_NOFOLLOW``.
    create : bool
        Create missing folders (and `root`).

    Raises
    ------
    OSError
        A part is a symlink or not a folder (the message says so), or missing.
    """
    root = Path(root)
    if create:
        root.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(root, flags)
    try:
        for i, part in enumerate(parts):
            try:
                sub = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                sub = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    where = display_path(root.joinpath(*parts[:i + 1]))
                    raise OSError(exc.errno, f"{where} is a symlink or not a folder; deepcolor writes only "
                                             f"inside OUT and does not follow symlinks there") from None
                raise
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def atomic_write_bytes(path, data, root=None):
    """Write bytes to `path` through a temporary file in the same folder, then rename.

    A killed process leaves either the old file or the new one, never a
    half-written one; the temporary file is removed on failure.

    Parameters
    ----------
    path : str or Path
    data : bytes
    root : str or Path, optional
        A folder that `path` lies in (lexically). The folders between `root`
        and `path` are created if missing and never followed where they are
        symlinks, and the file itself is written and renamed inside the
        folder so opened: nothing is written outside `root`, whatever
        symlinks are planted below it. Without `root`, `path`'s folder is
        opened as it is.

    Raises
    ------
    OSError
        The file cannot be written, or a folder below `root` is a symlink.
    ValueError
        `path` is not inside `root`.
    """
    path = Path(path)
    if root is None:
        root, parts = path.parent, ()
    else:
        parts = path.relative_to(root).parts[:-1]
    dir_fd = open_folder(root, parts, create=True)
    try:
        tmp = f"{partial_name_prefix(path.name)}{os.urandom(4).hex()}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                     0o666, dir_fd=dir_fd)  # the umask applies, as for any new file
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)


def remove_partial_files(path, root=None):
    """Delete the temporary files that a killed `atomic_write_bytes` of `path` left beside it.

    Below `root` no symlink is followed (nothing outside `root` is touched);
    a missing folder or a symlinked one is left alone.
    """
    path = Path(path)
    parts = () if root is None else path.relative_to(root).parts[:-1]
    try:
        dir_fd = open_folder(path.parent if root is None else root, parts)
    except OSError:
        return
    try:
        prefix = partial_name_prefix(path.name)
        for name in os.listdir(dir_fd):
            if name.startswith(prefix) and name.endswith(".part") and "." not in name[len(prefix):-5]:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                    os.unlink(name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


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
    PNG is encoded by OpenCV at both bit depths, then the iCCP and eXIf chunks
    are inserted after IHDR: on a 3000 x 2000 photo OpenCV's default took
    0.41 s for 8.8 MB, Pillow's compress_level=1 1.35 s for 10.1 MB (15%
    larger) and its default level 6 6.3 s for 8.7 MB. TIFF is written with
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
        rgb = _u16_to_u8(rgb)

    alpha = icc = exif = None
    if source is not None:
        alpha = _output_alpha(path, fmt, rgb, source.alpha)
        icc = _output_icc(path, fmt, source.icc_profile)
        exif = _output_exif(path, fmt, source.exif)

    if fmt.name == "PNG":
        data = _encode_png(rgb, alpha, icc, exif)
    elif fmt.name == "TIFF":
        data = _encode_tiff(rgb, alpha, icc, exif, path)
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
        return _u16_to_u8(alpha)
    raise TypeError(f"alpha dtype must be uint8 or uint16, got {alpha.dtype}")


def _icc_colour_space(profile):
    """Colour space of an ICC profile from its header (bytes 16:20), e.g. "RGB", "GRAY"; None if none."""
    if not profile or len(profile) < 20:
        return None
    return profile[16:20].decode("latin-1").strip()


def _output_icc(path, fmt, icc):
    if not icc:
        return None
    if not fmt.icc:
        log.debug("%s: %s holds no ICC profile; the input's profile is dropped", path, fmt.name)
        return None
    space = _icc_colour_space(icc)
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
    """JPEG, BMP or WebP bytes of 8-bit RGB(A), through Pillow."""
    from PIL import Image

    img = Image.fromarray(rgb if alpha is None else np.dstack([rgb, alpha]))  # RGB or RGBA
    options = {}
    if icc:
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    if name == "JPEG":
        options["quality"] = 95
    elif name == "WEBP":
        # exact: keep RGB under transparent pixels. In lossless mode quality is
        # the effort; on a 1500 x 1000 photo Pillow's default (quality 80, method
        # 4) took 3.5 s for 2.07 MB, quality 25 / method 1 0.86 s for 2.11 MB,
        # quality 0 / method 0 0.13 s for 2.36 MB (14% larger).
        options.update(lossless=True, exact=True, quality=25, method=1)
    buf = BytesIO()
    img.save(buf, format=name, **options)
    return buf.getvalue()


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_png(rgb, alpha, icc, exif):
    """PNG bytes of 8- or 16-bit RGB(A), by OpenCV, with iCCP and eXIf chunks."""
    import cv2

    bgr = rgb[..., ::-1] if alpha is None else np.dstack([rgb[..., ::-1], alpha])  # OpenCV: BGR(A)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.dtype} {bgr.shape} image as PNG")
    png = buf.tobytes()
    chunks = b""
    if icc:  # profile name, 0, compression method 0 (zlib), compressed profile
        chunks += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if exif:  # the TIFF structure, without the "Exif\0\0" of JPEG's APP1
        chunks += _png_chunk(b"eXIf", exif[6:])
    # Both must precede IDAT: put them right after IHDR, the first chunk
    # (8-byte signature, then 4 length + 4 type + 13 data + 4 CRC bytes).
    if png[12:16] != b"IHDR":
        raise ValueError("OpenCV wrote a PNG that does not start with IHDR")
    return png[:33] + chunks + png[33:]


_TIFF_STRIP_BYTES = 1 << 18  # uncompressed bytes per strip, about


def _encode_tiff(rgb, alpha, icc, exif, path):
    """Little-endian baseline TIFF bytes of 8- or 16-bit RGB(A), deflate-compressed."""
    from PIL import Image, TiffImagePlugin

    arr = rgb if alpha is None else np.dstack([rgb, alpha])  # (H, W, S)
    height, width, samples = arr.shape
    # Horizontal differencing (TIFF 6.0, Section 14): each sample minus its left
    # neighbour, modulo 2**bits; then little-endian samples, zlib level 1.
    diff = arr.copy()
    diff[:, 1:] -= arr[:, :-1]
    diff = diff.astype(diff.dtype.newbyteorder("<"), copy=False)
    rows = min(height, max(1, _TIFF_STRIP_BYTES // diff[0].nbytes))
    strips = [zlib.compress(diff[r:r + rows].tobytes(), 1) for r in range(0, height, rows)]

    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    if exif:  # IFD 0 tags, with the EXIF, GPS and interoperability IFDs nested
        tags = Image.Exif()
        tags.load(exif)
        for tag, value in _exif_tags(tags, path).items():
            ifd[tag] = value
    bits = 8 * arr.dtype.itemsize
    ifd[256] = width  # ImageWidth
    ifd[257] = height  # ImageLength
    ifd[258] = (bits,) * samples  # BitsPerSample
    ifd[259] = 8  # Compression: Adobe deflate
    ifd[262] = 2  # PhotometricInterpretation: RGB
    ifd[273] = tuple(np.cumsum([0] + [len(s) for s in strips[:-1]]).tolist())  # StripOffsets (*)
    ifd[277] = samples  # SamplesPerPixel
    ifd[278] = rows  # RowsPerStrip
    ifd[279] = tuple(len(s) for s in strips)  # StripByteCounts
    ifd[284] = 1  # PlanarConfiguration: samples interleaved
    ifd[317] = 2  # Predictor: horizontal differencing
    ifd[339] = (1,) * samples  # SampleFormat: unsigned integers
    if alpha is not None:
        ifd[338] = (2,)  # ExtraSamples: unassociated alpha
    if icc:
        ifd[34675] = icc  # ICCProfile
    # (*) Relative to the end of the directory: Pillow's writer adds that offset
    # to StripOffsets when it lays the directory out, as its own TIFF save does.
    buf = BytesIO()
    ifd.save(buf)  # header and IFD 0; the strips follow
    buf.write(b"".join(strips))
    return buf.getvalue()
