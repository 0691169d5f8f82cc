"""Which files are images: suffixes read and written, file signatures, what each output format holds.

Neither Pillow nor OpenCV is imported here: the command line reads
`IMAGE_EXTENSIONS` from it and ``--help`` stays fast.
"""

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from deepcolor.files import display_path
from deepcolor.images.picture import ImageError

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
