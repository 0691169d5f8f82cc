"""EXIF data of an image: the orientation applied to pixels, tags cleaned so another file can carry them.

A colorized copy keeps its input's EXIF data (`deepcolor.images.read`
returns them, `deepcolor.images.write` writes them), without the tags that
describe how the input stored its pixels.
"""

import logging
import os
import struct

import numpy as np

from deepcolor.files import display_path

log = logging.getLogger(__name__)


def orient(arr, orientation):
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


def png_exif(path):
    """The EXIF tags (a Pillow ``Image.Exif``) of a PNG's eXIf chunk, wherever it is; None if none.

    Only the chunk headers are read (each chunk's data is skipped by seeking),
    so a large image is not decoded to find an eXIf chunk after its pixels.
    """
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
                from PIL import Image  # lazy: only a PNG with an eXIf chunk needs Pillow

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
    from PIL import TiffImagePlugin  # lazy: --help stays fast

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


def exif_tags(exif, path):
    """IFD 0 tags of a Pillow ``Image.Exif`` as tag -> value, the EXIF, GPS and
    interoperability IFDs nested as dicts, without `_TIFF_LAYOUT_TAGS`."""
    from PIL import ExifTags  # lazy: --help stays fast

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


def clean_exif(exif, path):
    """EXIF bytes (``b"Exif\\x00\\x00"`` and a little-endian TIFF structure) of a
    Pillow ``Image.Exif``: layout tags removed, Orientation 1; None if no tag is left."""
    from PIL import TiffImagePlugin  # lazy: --help stays fast

    if exif is None:
        return None
    tags = exif_tags(exif, path)
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
