"""What is wrong with a damaged image file, from its structure and from libjpeg's warnings.

A file that no decoder reads gets a message that says why (a PNG chunk cut
short or with a bad checksum, a lossless or 12-bit JPEG, ...); a file read
all the same gets notes (damaged JPEG data, several frames), each logged.
"""

import logging
import os
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np

from deepcolor.files import display_path
from deepcolor.images.formats import sniff_format

log = logging.getLogger(__name__)


def diagnose_png(path):
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


def jpeg_frame(path):
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


def diagnose_jpeg(path):
    """Why a JPEG is unreadable (lossless, 12-bit, arithmetic coding, cut short); None if none is found."""
    frame = jpeg_frame(path)
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


def diagnose(path):
    """What is wrong with a PNG or JPEG file that failed to decode, from its structure; None if not found."""
    kind = sniff_format(path)
    try:
        return {"PNG": diagnose_png, "JPEG": diagnose_jpeg}[kind](path) if kind in ("PNG", "JPEG") else None
    except (OSError, struct.error):
        return None


def frames_note(path, img):
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


def jpeg_warnings(path):
    """libjpeg's warnings about a JPEG's data ("Corrupt JPEG data: ..."), each logged; () if none.

    Pillow decodes a JPEG whose entropy-coded data are damaged without a
    word (libjpeg fills what it cannot decode). OpenCV's libjpeg prints its
    warnings on the process's stderr: the file is decoded again at 1/8 scale
    (every coefficient is still entropy-decoded: 20 ms for 12 megapixels)
    with file descriptor 2 captured, and the warnings are returned.
    """
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
