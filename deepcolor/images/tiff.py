"""TIFF files: read by tifffile where Pillow reads them wrongly, written with deflate and the predictor.

Pillow cannot hold 16-bit RGB images, scrambles raw files of orientation
5..8 and un-multiplies no 16-bit alpha; tifffile reads those. The writer
lays out a baseline TIFF with Pillow's TIFF directory writer.
"""

import logging
import zlib
from io import BytesIO

import numpy as np

from deepcolor.files import display_path
from deepcolor.images.metadata import clean_exif, exif_tags, orient
from deepcolor.images.picture import ImageError, Picture, check_size

log = logging.getLogger(__name__)


def read_tiff(path, img):
    """Picture of a TIFF decoded by tifffile (pixels as stored), oriented here; None to leave it to Pillow.

    tifffile reads what Pillow reads wrongly or not at all: raw files of
    orientation 5..8 (Pillow 13 swaps their size and scrambles the rows),
    16-bit grey+alpha, 16-bit colour (kept 16-bit), floating-point and signed
    samples. Compressions it lacks without imagecodecs (LZW, JPEG), palette,
    CMYK, YCbCr, bilevel and inverted-grey files are left to Pillow (None).
    """
    import tifffile  # lazy: --help stays fast

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
    arr = orient(arr, exif.get(0x0112, 1))
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
    return Picture(pixels, alpha, icc, clean_exif(exif, path), img.format, img.mode, notes)


def read_tiff_alone(path, max_pixels):
    """Picture of a TIFF that Pillow cannot open, decoded by tifffile; None if it cannot either."""
    import tifffile  # lazy: --help stays fast

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            check_size(path, page.imagewidth, page.imagelength, max_pixels)
            tags = {int(t.code): t.value for t in page.tags.values()}
    except ImageError:
        raise
    except Exception:  # tifffile's own errors and others: not readable by it either
        return None

    class _Header:  # what read_tiff takes from Pillow: the EXIF orientation and the ICC profile
        format, mode, info = "TIFF", "tifffile", {"icc_profile": tags.get(34675)}

        @staticmethod
        def getexif():
            from PIL import Image  # lazy: --help stays fast

            exif = Image.Exif()
            if 274 in tags:
                exif[0x0112] = int(tags[274])
            return exif

    return read_tiff(path, _Header)


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


_TIFF_STRIP_BYTES = 1 << 18  # uncompressed bytes per strip, about


def encode_tiff(rgb, alpha, icc, exif, path):
    """Little-endian baseline TIFF bytes of 8- or 16-bit RGB(A), deflate-compressed."""
    from PIL import Image, TiffImagePlugin  # lazy: --help stays fast

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
        for tag, value in exif_tags(tags, path).items():
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
