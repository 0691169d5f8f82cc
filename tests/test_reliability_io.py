"""Every decode path the right way up, and messages that say what is wrong (issue 13, items 1 and 7).

The orientation test writes the same displayed picture, stored turned by
each EXIF/TIFF orientation 1..8, through every decode path of
`deepcolor.images.read.read_picture` (8- and 16-bit; grey, grey+alpha, RGB, RGBA;
PNG, TIFF raw/deflate/LZW, JPEG, WebP) and checks that the picture comes
back as displayed. The expected pixels come from the EXIF specification's
table (checked here against Pillow's ``exif_transpose`` and OpenCV's
``imread``), never from the code under test.
"""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from deepcolor.files import display_path
from deepcolor.images.picture import ImageError
from deepcolor.images.read import read_picture

H, W = 24, 40  # odd aspect, multiples of 8 (JPEG blocks)

# Displayed = SPEC[o](stored), from the EXIF 2.3 specification's description of tag 0x0112.
SPEC = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.swapaxes(0, 1),  # transposed
    6: lambda a: np.rot90(a, -1),  # stored turned 90 counter-clockwise: shown turned clockwise
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # transversed
    8: lambda a: np.rot90(a, 1),
}
# stored = INVERSE[o](displayed)
INVERSE = {1: SPEC[1], 2: SPEC[2], 3: SPEC[3], 4: SPEC[4], 5: SPEC[5], 6: SPEC[8], 7: SPEC[7], 8: SPEC[6]}


def _display(channels, bits, lossless=True):
    """The displayed picture (H, W[, C]): 8x8 blocks of distinct values, plus fine detail when lossless."""
    rows, cols = np.mgrid[0:H, 0:W]
    block = 20 + 23 * ((rows // 8) * 5 + (cols // 8)) % 220
    planes = [block, 255 - block, (block * 3) % 200 + 30, np.where(cols < W // 2, 255, 90)][:channels]
    arr = np.stack(planes, axis=-1).astype(np.uint16 if bits == 16 else np.uint8)
    if bits == 16:
        arr = arr * 257 + ((rows * 7 + cols) % 200)[..., None].astype(np.uint16) * bool(lossless)
    return arr[..., 0] if channels == 1 else arr


def _exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _pillow_mode(channels, bits):
    if bits == 16:
        return "I;16"
    return {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]


def _write_pillow(path, stored, channels, bits, orientation, **options):
    img = Image.fromarray(stored) if bits == 16 else Image.fromarray(stored, mode=_pillow_mode(channels, bits))
    fmt = path.suffix.lower()
    if fmt in (".tif", ".tiff"):
        img.save(path, tiffinfo={274: orientation}, **options)
    else:
        img.save(path, exif=_exif(orientation), **options)


def _write_tifffile(path, stored, channels, orientation, compression=None):
    import tifffile

    photometric = "minisblack" if channels <= 2 else "rgb"
    extrasamples = ("unassalpha",) if channels in (2, 4) else None
    tifffile.imwrite(path, stored, photometric=photometric, extrasamples=extrasamples, compression=compression,
                     extratags=[(274, "H", 1, orientation, True)])


def _png_exif_after_idat(path, stored, orientation):
    """A 16-bit PNG (OpenCV) with its eXIf chunk after the image data, as some cameras write it."""
    import cv2

    bgr = stored[..., 2::-1] if stored.ndim == 3 and stored.shape[2] >= 3 else stored
    if stored.ndim == 3 and stored.shape[2] == 4:
        bgr = np.dstack([stored[..., 2::-1], stored[..., 3]])
    png = cv2.imencode(".png", np.ascontiguousarray(bgr))[1].tobytes()
    tiff = _exif(orientation).tobytes()  # b"Exif\0\0" is not part of a PNG's eXIf chunk
    tiff = tiff[6:] if tiff.startswith(b"Exif") else tiff
    chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    iend = png.rindex(b"IEND") - 4
    path.write_bytes(png[:iend] + chunk + png[iend:])


def _add_orientation(data, orientation):
    """A little-endian TIFF's bytes with an Orientation tag (274) in IFD 0 (rewritten at the end)."""
    assert data[:4] == b"II*\x00"
    (ifd,) = struct.unpack("<I", data[4:8])
    (n,) = struct.unpack("<H", data[ifd:ifd + 2])
    entries = [data[ifd + 2 + 12 * i:ifd + 14 + 12 * i] for i in range(n)]
    (next_ifd,) = struct.unpack("<I", data[ifd + 2 + 12 * n:ifd + 6 + 12 * n])
    entries = [e for e in entries if struct.unpack("<H", e[:2])[0] != 274]
    entries.append(struct.pack("<HHIHH", 274, 3, 1, orientation, 0))  # SHORT, count 1, value
    entries.sort(key=lambda e: struct.unpack("<H", e[:2])[0])
    start = len(data) + len(data) % 2
    out = bytearray(data) + b"\x00" * (start - len(data))
    out += struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", next_ifd)
    out[4:8] = struct.pack("<I", start)
    return bytes(out)


def _write_opencv_tiff(path, stored, orientation):
    """A 16-bit colour TIFF as OpenCV writes it (LZW, which tifffile cannot decode without imagecodecs)."""
    import cv2

    bgr = stored[..., 2::-1] if stored.shape[2] == 3 else np.dstack([stored[..., 2::-1], stored[..., 3]])
    path.write_bytes(_add_orientation(cv2.imencode(".tif", np.ascontiguousarray(bgr))[1].tobytes(), orientation))


# (name, channels, bits, writer(path, stored, channels, bits, orientation), lossless)
CASES = [
    ("png8-grey", 1, 8, lambda p, s, c, b, o: _write_pillow(p.with_suffix(".png"), s, c, b, o), True),
    ("png8-la", 2, 8, lambda p, s, c, b, o: _write_pillow(p.with_suffix(".png"), s, c, b, o), True),
    ("png8-rgb", 3, 8, lambda p, s, c, b, o: _write_pillow(p.with_suffix(".png"), s, c, b, o), True),
    ("png8-rgba", 4, 8, lambda p, s, c, b, o: _write_pillow(p.with_suffix(".png"), s, c, b, o), True),
    ("png16-grey", 1, 16, lambda p, s, c, b, o: _write_pillow(p.with_suffix(".png"), s, c, b, o), True),
    ("png16-rgb-exif-first", 3, 16, None, True),
    ("png16-rgb-exif-last", 3, 16, lambda p, s, c, b, o: _png_exif_after_idat(p.with_suffix(".png"), s, o), True),
    ("png16-rgba-exif-last", 4, 16, lambda p, s, c, b, o: _png_exif_after_idat(p.with_suffix(".png"), s, o), True),
    ("tif8-grey-raw", 1, 8, lambda p, s, c, b, o: _write_pillow(p.with_suffix(".tif"), s, c, b, o), True),
    ("tif8-grey-deflate", 1, 8,
     lambda p, s, c, b, o: _write_pillow(p.with_suffix(".tif"), s, c, b, o, compression="tiff_adobe_deflate"), True),
    ("tif8-grey-lzw", 1, 8,
     lambda p, s, c, b, o: _write_pillow(p.with_suffix(".tif"), s, c, b, o, compression="tiff_lzw"), True),
    ("tif8-rgb-raw", 3, 8, lambda p, s, c, b, o: _write_pillow(p.with_suffix(".tif"), s, c, b, o), True),
    ("tif8-rgb-lzw", 3, 8,
     lambda p, s, c, b, o: _write_pillow(p.with_suffix(".tif"), s, c, b, o, compression="tiff_lzw"), True),
    ("tif8-rgba-raw", 4, 8, lambda p, s, c, b, o: _write_pillow(p.with_suffix(".tif"), s, c, b, o), True),
    ("tif8-rgba-deflate", 4, 8,
     lambda p, s, c, b, o: _write_pillow(p.with_suffix(".tif"), s, c, b, o, compression="tiff_adobe_deflate"), True),
    ("tif16-grey-raw", 1, 16, lambda p, s, c, b, o: _write_tifffile(p.with_suffix(".tif"), s, c, o), True),
    ("tif16-grey-lzw", 1, 16,
     lambda p, s, c, b, o: _write_pillow(p.with_suffix(".tif"), s, c, b, o, compression="tiff_lzw"), True),
    ("tif16-la-raw", 2, 16, lambda p, s, c, b, o: _write_tifffile(p.with_suffix(".tif"), s, c, o), True),
    ("tif16-rgb-raw", 3, 16, lambda p, s, c, b, o: _write_tifffile(p.with_suffix(".tif"), s, c, o), True),
    ("tif16-rgb-deflate", 3, 16,
     lambda p, s, c, b, o: _write_tifffile(p.with_suffix(".tif"), s, c, o, compression="zlib"), True),
    ("tif16-rgb-lzw-opencv", 3, 16, lambda p, s, c, b, o: _write_opencv_tiff(p.with_suffix(".tif"), s, o), True),
    ("tif16-rgba-lzw-opencv", 4, 16, lambda p, s, c, b, o: _write_opencv_tiff(p.with_suffix(".tif"), s, o), True),
    ("tif16-rgba-deflate", 4, 16,
     lambda p, s, c, b, o: _write_tifffile(p.with_suffix(".tif"), s, c, o, compression="zlib"), True),
    ("jpg-grey", 1, 8, lambda p, s, c, b, o: _write_pillow(p.with_suffix(".jpg"), s, c, b, o, quality=100), False),
    ("jpg-rgb", 3, 8, lambda p, s, c, b, o: _write_pillow(p.with_suffix(".jpg"), s, c, b, o, quality=100,
                                                          subsampling=0), False),
    ("webp-rgb", 3, 8, lambda p, s, c, b, o: _write_pillow(p.with_suffix(".webp"), s, c, b, o, lossless=True), True),
    ("webp-rgba", 4, 8,
     lambda p, s, c, b, o: _write_pillow(p.with_suffix(".webp"), s, c, b, o, lossless=True, exact=True), True),
]


def _write_case(tmp_path, case, orientation):
    name, channels, bits, writer, lossless = case
    shown = _display(channels, bits, lossless)
    stored = np.ascontiguousarray(INVERSE[orientation](shown))
    base = tmp_path / f"{name}-o{orientation}"
    if writer is None:  # deepcolor's own PNG writer puts eXIf first
        from deepcolor.images.png import encode_png

        exif = _exif(orientation).tobytes()
        exif = exif[6:] if exif.startswith(b"Exif") else exif  # the eXIf chunk holds the TIFF structure
        base.with_suffix(".png").write_bytes(encode_png(stored, exif=exif))
    else:
        writer(base, stored, channels, bits, orientation)
    path = next(p for p in tmp_path.iterdir() if p.stem == base.name)
    return path, shown


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_read_picture_orientation_every_decode_path(tmp_path, case, orientation):
    path, shown = _write_case(tmp_path, case, orientation)
    _, channels, bits, _, lossless = case
    pic = read_picture(path)
    colour = shown[..., :3] if channels >= 3 else shown[..., 0] if channels == 2 else shown
    got = pic.pixels
    if got.ndim == 3 and colour.ndim == 2:  # a grey JPEG or WebP read as RGB: equal channels
        got = got[..., 0]
    assert got.shape == colour.shape, (path.name, got.shape)
    assert got.dtype == colour.dtype, (path.name, got.dtype)
    if lossless:
        np.testing.assert_array_equal(got, colour, err_msg=path.name)
    else:
        assert np.abs(got.astype(int) - colour.astype(int)).mean() < 2, path.name
    if channels in (2, 4):
        np.testing.assert_array_equal(pic.alpha, shown[..., -1], err_msg=path.name)
    else:
        assert pic.alpha is None
    if pic.exif is not None:  # applied to the pixels: reset to 1 in what is carried over
        exif = Image.Exif()
        exif.load(pic.exif)
        assert exif.get(0x0112, 1) == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_table_unit(tmp_path, orientation):
    """The table above agrees with Pillow's exif_transpose and OpenCV's imread (two outside decoders)."""
    import cv2
    from PIL import ImageOps

    shown = _display(3, 8)
    path = tmp_path / "o.png"
    Image.fromarray(np.ascontiguousarray(INVERSE[orientation](shown))).save(path, exif=_exif(orientation))
    with Image.open(path) as img:
        np.testing.assert_array_equal(np.asarray(ImageOps.exif_transpose(img)), shown)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1], shown)


def test_read_picture_png16_exif_after_idat_kept(tmp_path):
    """The EXIF of a 16-bit PNG whose eXIf chunk follows the pixels is read (and carried over)."""
    shown = _display(3, 16)
    path = tmp_path / "late.png"
    _png_exif_after_idat(path, np.ascontiguousarray(INVERSE[6](shown)), 6)
    pic = read_picture(path)
    assert pic.exif is not None
    np.testing.assert_array_equal(pic.pixels, shown)


# --- item 7: messages that say what is wrong ------------------------------------------------


def _assert_error(path, *parts):
    with pytest.raises(ImageError) as info:
        read_picture(path)
    msg = str(info.value)
    assert msg.startswith(f"{display_path(path)}: "), msg
    for part in parts:
        assert part in msg, msg
    assert "\n" not in msg
    return msg


def _png_bytes(arr):
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_read_picture_exception_truncated_png_header(tmp_path):
    data = _png_bytes(_display(1, 8))
    for cut, expected in ((20, "truncated PNG: it ends inside its 'IHDR' chunk"),
                          (33 + 10, "truncated PNG: it ends inside its 'IDAT' chunk")):
        path = tmp_path / f"cut{cut}.png"
        path.write_bytes(data[:cut])
        msg = _assert_error(path, expected)
        assert "not an image file" not in msg


def test_read_picture_exception_truncated_tiff(tmp_path):
    path = tmp_path / "full.tif"
    Image.fromarray(_display(1, 8)).save(path)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(path.read_bytes()[:12])
    msg = _assert_error(cut, "TIFF")
    assert "not an image file that Pillow can read" not in msg


def test_read_picture_png_bad_text_crc_read_with_warning(tmp_path, caplog):
    """A bad checksum in an ancillary (text) chunk: the pixels are intact, read by OpenCV, with a warning."""
    data = bytearray(_png_bytes(_display(1, 8)))
    text = b"Comment\x00scanned 1962"
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text) ^ 1)
    path = tmp_path / "badcrc.png"
    path.write_bytes(bytes(data[:33]) + chunk + bytes(data[33:]))
    with caplog.at_level("WARNING"):
        pic = read_picture(path)
    np.testing.assert_array_equal(pic.pixels, _display(1, 8))
    assert "corrupt PNG: bad checksum (CRC) of its 'tEXt' chunk; read by OpenCV" in caplog.text


def test_read_picture_exception_png_bad_idat_crc(tmp_path):
    data = bytearray(_png_bytes(_display(1, 8)))
    idat = data.index(b"IDAT")
    data[idat + 6] ^= 0xFF  # pixel data changed, CRC not
    path = tmp_path / "badidat.png"
    path.write_bytes(bytes(data))
    _assert_error(path, "bad checksum (CRC) of its 'IDAT' chunk")


@pytest.mark.parametrize("marker, precision, expected", [
    (0xC1, 12, "12-bit JPEG (SOF1)"),
    (0xC3, 8, "lossless JPEG (SOF3"),
    (0xC3, 16, "lossless JPEG (SOF3, 16-bit)"),
])
def test_read_picture_exception_jpeg_kinds(tmp_path, marker, precision, expected):
    import io

    buf = io.BytesIO()
    Image.fromarray(_display(1, 8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 1], data[sof + 4] = marker, precision
    path = tmp_path / "odd.jpg"
    path.write_bytes(bytes(data))
    _assert_error(path, expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_read_picture_float_tiff(tmp_path, dtype):
    import tifffile

    arr = np.linspace(0, 1, H * W).reshape(H, W).astype(dtype)
    tifffile.imwrite(tmp_path / "f.tif", arr)
    pic = read_picture(tmp_path / "f.tif")
    np.testing.assert_array_equal(pic.pixels, np.rint(arr.astype(np.float64) * 65535).astype(np.uint16))
    tifffile.imwrite(tmp_path / "g.tif", arr * 2)
    _assert_error(tmp_path / "g.tif", "floating-point grey values must lie in [0, 1]", "got range 0..2")


def test_read_picture_signed_16bit_tiff(tmp_path):
    import tifffile

    arr = (np.arange(H * W).reshape(H, W) * 10).astype(np.int16)
    tifffile.imwrite(tmp_path / "s.tif", arr)
    np.testing.assert_array_equal(read_picture(tmp_path / "s.tif").pixels, arr.astype(np.uint16))
    tifffile.imwrite(tmp_path / "n.tif", arr - 100)
    msg = _assert_error(tmp_path / "n.tif", "signed 16-bit integer grey values outside 0..65535 (range -100..")
    assert "32-bit" not in msg


def test_read_picture_16bit_grey_alpha_tiff(tmp_path):
    """The README promises 16-bit grey+alpha: a TIFF of it is read at 16 bits with its alpha."""
    import tifffile

    shown = _display(2, 16)
    tifffile.imwrite(tmp_path / "la.tif", shown, photometric="minisblack", extrasamples=("unassalpha",))
    pic = read_picture(tmp_path / "la.tif")
    np.testing.assert_array_equal(pic.pixels, shown[..., 0])
    np.testing.assert_array_equal(pic.alpha, shown[..., 1])


def test_read_picture_exception_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture\n")
    _assert_error(path, "not an image file that Pillow can read")


def test_display_path_unit():
    assert display_path("/a/b c/é.png") == "/a/b c/é.png"
    assert display_path("/a/new\nline.png") == "/a/new\\nline.png"
    assert display_path("/a/esc\x1b[31m.png") == "/a/esc\\x1b[31m.png"
    assert display_path(b"/a/\xff.png".decode("utf-8", "surrogateescape")) == "/a/\\xff.png"
    assert display_path("/a\\b/\n") == "/a\\\\b/\\n"


def test_image_error_one_line(tmp_path):
    path = tmp_path / "two\nlines.png"
    path.write_bytes(b"")
    msg = _assert_error(path, "two\\nlines.png: empty file (0 bytes)")
    assert msg.count("\n") == 0


def test_read_picture_corrupt_jpeg_data_noted(tmp_path, caplog):
    """Damaged entropy-coded data mid-scan: colorized as decoded, but with libjpeg's warning."""
    import io

    import cv2

    rng = np.random.default_rng(0)
    grey = cv2.GaussianBlur((rng.random((240, 320)) * 255).astype(np.uint8), (0, 0), 3)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="JPEG", quality=90)
    data = bytearray(buf.getvalue())
    sos = data.index(b"\xff\xda")
    mid = sos + (len(data) - sos) // 2
    data[mid:mid + 40] = rng.integers(0, 255, 40, dtype=np.uint8).tobytes()
    path = tmp_path / "damaged.jpg"
    path.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        pic = read_picture(path)
    assert pic.pixels.shape == (240, 320)
    assert len(pic.notes) == 1 and "damaged JPEG data (libjpeg: Corrupt JPEG data" in pic.notes[0]
    assert "damaged.jpg: damaged JPEG data" in caplog.text
    sound = tmp_path / "sound.jpg"
    Image.fromarray(grey).save(sound, quality=90)
    assert read_picture(sound).notes == ()
